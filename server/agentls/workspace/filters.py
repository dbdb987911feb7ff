"""What may never be read (secrets), and what the user asked to leave out (ignore files).

Three judgements live here, all pure and cheap so the index can apply them to every entry of a walk:

* ``is_secret``: a fixed deny-list of file and directory names that hold credentials. It is
  checked before anything else and nothing can switch it off, because a file sent to a model has
  left the machine.
* ``IgnoreRules``: the folder's ``.gitignore`` files (root and nested, with git's semantics via
  pathspec), ``.git/info/exclude``, and the folder's own ``.agentlsignore``. ``.git/`` is always
  ignored.
* ``looks_binary``: git's rule, a NUL byte in the first 8 KiB.

An ``IgnoreRules`` is built in one thread (a walk, or ``load``) and only read after that, so it can
be handed from a worker thread to the event loop without a lock.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pathspec

from agentls.workspace import reader

logger = logging.getLogger(__name__)

IgnoreReason = Literal["gitignored", "agentlsignored", "secret"]

AGENTLS_IGNORE = ".agentlsignore"
"""The folder's own ignore file (gitignore syntax); its ``!`` lines re-include gitignored files."""

GITIGNORE = ".gitignore"

BINARY_SNIFF_BYTES = 8192
"""How much of a file's head ``looks_binary`` inspects; git uses the same 8 KiB."""

_MAX_IGNORE_FILE_BYTES = 1024 * 1024
"""An ignore file bigger than this is not a real one; it is skipped with a warning."""

_SECRET_DIRS = frozenset({".aws", ".ssh", ".gnupg", ".kube", ".docker", ".terraform"})
"""Directories whose whole content is credentials (or keys to them); ``.terraform/`` holds
provider state and plans with the same secrets as ``*.tfstate``."""

_SECRET_NAMES = frozenset(
    {
        ".npmrc",
        ".pypirc",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".pgpass",
        ".htpasswd",
        "kubeconfig",
        "credentials.json",
        "service-account.json",
        "credentials",
        "application_default_credentials.json",
        ".vault-token",
        ".s3cfg",
        ".boto",
        "fish_history",
    }
)
"""Exact file names (lower-cased) that hold tokens or passwords. A bare ``credentials`` is the
AWS/GCP CLI form; ``fish_history`` is the one shell history whose name has no leading dot."""

_SECRET_PREFIXES = (
    ".env",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "deploy_key",
)
"""Name prefixes: dotenv files of every flavour, SSH private keys (and their ``.pub`` too,
which is harmless but not worth a special case), deploy keys."""

_SECRET_PATHS = ("gh/hosts.yml", "gh/hosts.yaml")
"""Path endings: the GitHub CLI's tokens (``~/.config/gh/hosts.yml``)."""

_BACKUP_SUFFIXES = (".bak", ".orig", ".old", ".backup", ".save", ".sav", ".tmp", ".copy")
"""What editors, merges and people append to a file they keep a copy of."""

_SWAP_SUFFIXES = (".swp", ".swo", ".swn", ".swx")
"""Vim swap files: ``.<name>.swp`` holds the text of ``<name>``."""

_SECRET_SUFFIXES = (
    ".pem",
    ".key",
    ".p12",
    ".pfx",
    ".jks",
    ".keystore",
    ".kdbx",
    ".ppk",
    ".tfstate",
    ".tfstate.backup",
    ".kubeconfig",
    ".env",
    ".p8",
    ".tfvars",
    ".tfvars.json",
)
"""Name suffixes: private keys and key stores (``.p8``: Apple and Snowflake keys), Terraform
state and variable files (full of secrets), env files."""


def _is_secret_name(name: str) -> bool:
    """Whether a lower-cased file name (without its backup decorations) is deny-listed."""
    return (
        name in _SECRET_NAMES
        or name.startswith(_SECRET_PREFIXES)
        or name.endswith(_SECRET_SUFFIXES)
        or (name.startswith(".") and name.endswith("history"))  # .bash_history, .zhistory...
        or (name.startswith("ssh_host_") and name.endswith("_key"))
        or (name.startswith("client_secret") and name.endswith(".json"))  # OAuth clients
    )


def _undecorated(name: str) -> list[str]:
    """The names a backup, swap or autosave file stands for (``.netrc~`` -> ``.netrc``).

    ``key.pem.bak``, ``.netrc~``, ``.env.orig``, ``#.env#`` (Emacs), ``.server.pem.swp`` (Vim);
    decorations may stack (``id_rsa.bak~``).
    """
    out: list[str] = []
    while True:
        before = name
        name = name.rstrip("~")
        if len(name) > 2 and name.startswith("#") and name.endswith("#"):
            name = name[1:-1]
        for suffix in _BACKUP_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
        for suffix in _SWAP_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                if name.startswith(".") and len(name) > 1:
                    out.append(name)  # ".env.swp" is the swap file of ".env" or of "env"
                    name = name[1:]
        if name == before or not name:
            return out
        out.append(name)


def is_secret(rel_posix: str) -> bool:
    """Whether a path names a file that must never be read into a prompt.

    Matching is on names, case-insensitively, so it needs no I/O and also covers files that do
    not exist yet.

    Args:
        rel_posix: the path relative to its workspace folder, ``/``-separated. A directory path
            (``.ssh``) is judged the same way, so the walk never descends into it.

    Returns:
        True for the deny-list: ``.env*``, ``*.pem``, ``*.key``, ``*.p8``, SSH keys (user, host
        and deploy keys), ``.npmrc``, ``.pypirc``, ``.netrc``, ``.git-credentials``, ``.s3cfg``,
        ``.boto``, ``.vault-token``, a bare ``credentials``, cloud credential JSON
        (``client_secret*.json``, ``application_default_credentials.json``), ``gh/hosts.yml``,
        ``*.p12``/``*.pfx``, key stores, Terraform state and variables, kubeconfig, shell
        histories, anything under ``.aws/``, ``.ssh/``, ``.gnupg/``, ``.kube/``, ``.docker/``,
        ``.terraform/``, and backup, swap and autosave copies of all of these (``key.pem.bak``,
        ``.netrc~``, ``.env.swp``, ``#.env#``).
    """
    lowered = rel_posix.lower()
    parts = lowered.split("/")
    name = parts[-1]
    if any(part in _SECRET_DIRS for part in parts):
        return True
    if lowered.endswith(_SECRET_PATHS) and (
        lowered in _SECRET_PATHS or lowered.endswith(tuple("/" + p for p in _SECRET_PATHS))
    ):
        return True
    if _is_secret_name(name):
        return True
    return any(_is_secret_name(plain) for plain in _undecorated(name))


def looks_binary(head: bytes) -> bool:
    """Whether content is binary by git's rule: a NUL byte among the first 8 KiB.

    Args:
        head: the start of the file (more is fine; only 8 KiB are looked at).
    """
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


def compile_patterns(lines: Iterable[str], source: str) -> pathspec.GitIgnoreSpec | None:
    """Compile gitignore-style lines, dropping the ones git would not accept either.

    Args:
        lines: the lines of an ignore file, or a list of globs.
        source: where the lines come from, for the warning about a bad line.

    Returns:
        The spec, or None when no line is a pattern (so callers skip it cheaply).
    """
    kept = [line.rstrip("\r") for line in lines]
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(kept)
    except ValueError:
        good: list[str] = []
        for line in kept:
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except ValueError:
                logger.warning("ignoring an invalid pattern in %s: %r", source, line[:200])
                continue
            good.append(line)
        spec = pathspec.GitIgnoreSpec.from_lines(good)
    return spec if len(spec) else None


def _read_lines(path: Path, folder: Path) -> list[str] | None:
    """The lines of an ignore file, or None when there is none (or it may not be read).

    Read through the safe reader: a FIFO, a device or a symlink out of ``folder`` (``.gitignore
    -> /dev/stdin``) is skipped instead of blocking the walk or reading the editor's pipe.
    """
    got = reader.read_regular(
        path, max_bytes=_MAX_IGNORE_FILE_BYTES, within=(folder,), follow_symlink=True
    )
    if isinstance(got, str):
        if got == "too_large":
            logger.warning("skipping %s: larger than %d bytes", path, _MAX_IGNORE_FILE_BYTES)
        elif got != "missing":
            logger.warning("skipping %s: %s", path, got.replace("_", " "))
        return None
    return got.data.decode("utf-8", errors="replace").splitlines()


class IgnoreRules:
    """The ignore rules of one workspace folder.

    Precedence follows git: a deeper ``.gitignore`` decides before a shallower one, the last
    matching line of a file wins, ``.git/info/exclude`` comes after every ``.gitignore``, and a
    file inside an ignored directory stays ignored. ``.agentlsignore`` is consulted before the
    ``.gitignore`` files: its patterns ignore (reason ``agentlsignored``) and its ``!`` patterns
    re-include files that ``.gitignore`` leaves out (generated code an agent should see, say).
    Two things no file of the repository can re-include: secrets, and what the user excluded in
    ``.git/info/exclude`` (unlike git, where a ``.gitignore`` negation beats it: that file is
    the user's, the others are the repository's, and the repository is not trusted).
    """

    def __init__(self, folder: Path) -> None:
        """Empty rules for ``folder``; ``load`` or ``root`` fill them.

        Args:
            folder: the workspace folder (a realpath) the relative paths are relative to.
        """
        self.folder = folder
        """The folder the rules belong to."""
        self._git: dict[str, pathspec.GitIgnoreSpec] = {}
        """``.gitignore`` specs by the relative directory holding them (``""`` for the root)."""
        self._exclude: pathspec.GitIgnoreSpec | None = None
        """``.git/info/exclude`` of the folder, if it is a repository root."""
        self._agentls: pathspec.GitIgnoreSpec | None = None
        """The folder's ``.agentlsignore``."""
        self.sources: list[Path] = []
        """The ignore files these rules were read from (for logs and change detection)."""

    @classmethod
    def root(cls, folder: Path) -> IgnoreRules:
        """Rules from the folder's own top-level files only; a walk adds nested ones as it goes.

        Args:
            folder: the workspace folder (a realpath).
        """
        rules = cls(folder)
        agentls = _read_lines(folder / AGENTLS_IGNORE, folder)
        if agentls is not None:
            rules._agentls = compile_patterns(agentls, str(folder / AGENTLS_IGNORE))
            rules.sources.append(folder / AGENTLS_IGNORE)
        exclude_file = folder / ".git" / "info" / "exclude"
        exclude = _read_lines(exclude_file, folder)
        if exclude is not None:
            rules._exclude = compile_patterns(exclude, str(exclude_file))
            rules.sources.append(exclude_file)
        rules.add_gitignore_file("")
        return rules

    @classmethod
    def load(cls, folder: Path) -> IgnoreRules:
        """Rules from every ignore file of the folder, nested ones included.

        Walks the folder for ``.gitignore`` files without descending into ignored or secret
        directories (so ``node_modules/**/.gitignore`` is never read). This is blocking I/O: call
        it from a worker thread.

        Args:
            folder: the workspace folder (a realpath).
        """
        rules = cls.root(folder)
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                with os.scandir(folder / rel_dir if rel_dir else folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if not is_dir:
                    continue
                if rules.own_reason(rel, True) is None:
                    rules.add_gitignore_file(rel)
                    stack.append(rel)
        return rules

    @classmethod
    def for_path(cls, folder: Path, rel_posix: str) -> IgnoreRules:
        """Rules enough to judge one path: the root files plus the ``.gitignore`` of each ancestor.

        Used when a path must be judged before the folder has been walked; it reads at most one
        small file per directory level.

        Args:
            folder: the workspace folder (a realpath).
            rel_posix: the path to be judged, relative to ``folder``.
        """
        rules = cls.root(folder)
        parts = rel_posix.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            rules.add_gitignore_file("/".join(parts[:depth]))
        return rules

    def add_gitignore_file(self, rel_dir: str) -> bool:
        """Read ``<rel_dir>/.gitignore`` if there is one; blocking, for the thread that builds.

        Args:
            rel_dir: the directory relative to the folder (``""`` for the root).

        Returns:
            Whether a ``.gitignore`` with patterns was found.
        """
        path = self.folder / rel_dir / GITIGNORE if rel_dir else self.folder / GITIGNORE
        lines = _read_lines(path, self.folder)
        if lines is None:
            return False
        return self.add_gitignore(rel_dir, lines, source=path)

    def add_gitignore(
        self, rel_dir: str, lines: Iterable[str], *, source: Path | None = None
    ) -> bool:
        """Add the patterns of the ``.gitignore`` that sits in ``rel_dir``.

        Args:
            rel_dir: the directory relative to the folder (``""`` for the root).
            lines: the file's lines.
            source: the file, remembered in ``sources``.

        Returns:
            Whether the lines held any pattern.
        """
        spec = compile_patterns(lines, str(source or rel_dir or GITIGNORE))
        if source is not None:
            self.sources.append(source)
        if spec is None:
            return False
        self._git[rel_dir] = spec
        return True

    def reason(self, rel_posix: str, is_dir: bool) -> IgnoreReason | None:
        """Why a path is left out, looking at its ancestors too.

        Args:
            rel_posix: the path relative to the folder, ``/``-separated.
            is_dir: whether it is a directory (``build/`` patterns match directories only).

        Returns:
            ``"secret"``, ``"agentlsignored"`` or ``"gitignored"``; None when the path may be used.
        """
        if is_secret(rel_posix):
            return "secret"
        parts = rel_posix.split("/")
        for depth in range(1, len(parts)):
            ancestor = self.own_reason("/".join(parts[:depth]), True)
            if ancestor is not None:
                return ancestor
        return self.own_reason(rel_posix, is_dir)

    def own_reason(self, rel_posix: str, is_dir: bool) -> IgnoreReason | None:
        """Why a path is left out, assuming its ancestors are not (the walk prunes them).

        Args:
            rel_posix: the path relative to the folder, ``/``-separated.
            is_dir: whether it is a directory.

        Returns:
            The reason, or None.
        """
        if is_secret(rel_posix):
            return "secret"
        if "/.git/" in f"/{rel_posix}/":
            return "gitignored"
        key = f"{rel_posix}/" if is_dir else rel_posix
        # The user's own exclusions come first: .git/info/exclude is not part of the repository,
        # so no file the repository ships (.agentlsignore's "!*", a .gitignore's "!x") may
        # re-include what it leaves out.
        if self._exclude is not None and self._exclude.check_file(key).include:
            return "gitignored"
        if self._agentls is not None:
            decided = self._agentls.check_file(key).include
            if decided is True:
                return "agentlsignored"
            if decided is False:
                return None
        if self._git:
            # Deepest .gitignore first: it overrides the ones above it.
            slash = key.rfind("/", 0, len(key) - 1)
            while True:
                rel_dir = key[:slash] if slash > 0 else ""
                spec = self._git.get(rel_dir)
                if spec is not None:
                    sub = key[slash + 1 :] if slash > 0 else key
                    decided = spec.check_file(sub).include
                    if decided is not None:
                        return "gitignored" if decided else None
                if slash <= 0:
                    break
                slash = key.rfind("/", 0, slash)
        return None

    def is_ignore_file(self, rel_posix: str) -> bool:
        """Whether a changed path is one of the files these rules come from (or could come from).

        Args:
            rel_posix: a path relative to the folder.
        """
        name = rel_posix.rsplit("/", 1)[-1]
        return name == GITIGNORE or rel_posix == AGENTLS_IGNORE or rel_posix == ".git/info/exclude"
