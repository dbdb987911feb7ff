"""The workspace folders, and the one place that decides whether a path is inside them.

Every path that reaches a service from outside (a command argument, a URI from the editor, a
symlink found on disk) is turned into a realpath here and checked for containment with
``Path.is_relative_to`` against realpath'd folders. A string-prefix test would accept
``/work/app-secrets`` for the folder ``/work/app``; resolving symlinks first means a link that
points out of the workspace is judged by where it points, not by where it sits.

``WorkspaceRoots`` is owned by the server and changed on the event loop only (``set_folders``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from agentls.errors import InvalidArguments, OutsideWorkspace

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
"""A URI scheme: two characters or more, so a Windows drive letter (``C:``) is not one."""

_FIELD = "uri"
"""The argument name used in errors: every caller passes a URI or a path in that role."""


class WorkspaceRoots:
    """The realpaths of the workspace folders, in the order the editor gave them."""

    def __init__(self, folders: Sequence[Path]) -> None:
        """Store the realpaths of ``folders``, order kept, duplicates dropped.

        Args:
            folders: the workspace folders as the editor or the CLI named them.
        """
        self._folders: tuple[Path, ...] = ()
        """Realpaths, unique, in the given order; the first one anchors relative paths."""
        self._by_depth: tuple[Path, ...] = ()
        """The same folders, deepest first, so a nested folder wins over its parent."""
        self.set_folders(folders)

    @property
    def folders(self) -> tuple[Path, ...]:
        """The workspace folders (realpaths), in the editor's order."""
        return self._folders

    def set_folders(self, folders: Sequence[Path]) -> None:
        """Replace the folders, e.g. after ``workspace/didChangeWorkspaceFolders``.

        Args:
            folders: the new workspace folders; resolved to realpaths, duplicates dropped.
        """
        seen: dict[Path, None] = {}
        for folder in folders:
            seen.setdefault(Path(os.path.realpath(folder)), None)
        self._folders = tuple(seen)
        self._by_depth = tuple(sorted(self._folders, key=lambda p: len(p.parts), reverse=True))

    def resolve(self, ref: str | Path) -> Path:
        """Turn a reference from the outside into a realpath inside the workspace.

        Args:
            ref: a ``file://`` URI, an absolute path, or a path relative to the first folder.

        Returns:
            The realpath (symlinks resolved, ``..`` collapsed). The file need not exist.

        Raises:
            InvalidArguments: ``ref`` is empty, holds a NUL byte, or is a URI of another scheme
                (or of another host).
            OutsideWorkspace: the realpath lies in no workspace folder, including when a symlink
                on the way points out of the workspace.
        """
        raw = ref if isinstance(ref, str) else os.fspath(ref)
        if not raw:
            raise InvalidArguments(_FIELD, "an empty path is not a file")
        if "\x00" in raw:
            raise InvalidArguments(_FIELD, "a path must not contain a NUL byte")
        path_text = _path_of_uri(raw) if _SCHEME.match(raw) else raw
        if "\x00" in path_text:
            raise InvalidArguments(_FIELD, "a path must not contain a NUL byte")
        candidate = Path(path_text)
        if not candidate.is_absolute():
            if not self._folders:
                raise OutsideWorkspace(raw)
            candidate = self._folders[0] / candidate
        try:
            real = Path(os.path.realpath(candidate))
        except (OSError, ValueError) as e:
            raise InvalidArguments(_FIELD, f"cannot resolve the path ({type(e).__name__})") from e
        if self.folder_of(real) is None:
            raise OutsideWorkspace(raw)
        return real

    def folder_of(self, path: Path) -> Path | None:
        """The workspace folder that holds ``path``, the deepest one if folders are nested.

        Args:
            path: a realpath (as ``resolve`` returns); no resolving is done here.

        Returns:
            The folder, or None when ``path`` is in none of them.
        """
        for folder in self._by_depth:
            if path.is_relative_to(folder):
                return folder
        return None

    def display(self, path: Path) -> str:
        """How a path is shown to the user and to the model.

        Args:
            path: a realpath.

        Returns:
            The posix path relative to its folder, prefixed with ``<folder name>/`` when there is
            more than one folder (so two folders' ``README.md`` stay apart); the full posix path
            when the path is in no folder.
        """
        folder = self.folder_of(path)
        if folder is None:
            return path.as_posix()
        return self.display_rel(folder, path.relative_to(folder).as_posix())

    def display_rel(self, folder: Path, rel: str) -> str:
        """``display`` for a path already split into its folder and relative posix path.

        The context builder calls this for every globbed file, where the index already knows
        both parts; it saves a containment test and a ``relative_to`` per file.

        Args:
            folder: one of ``folders``.
            rel: the posix path relative to ``folder``.

        Returns:
            The same string ``display`` gives for ``folder / rel``.
        """
        if len(self._folders) > 1:
            return f"{folder.name}/{rel}" if rel else folder.name
        return rel or "."


def _path_of_uri(uri: str) -> str:
    """The local path of a ``file:`` URI; other schemes and remote hosts are refused."""
    try:
        parts = urlsplit(uri)
    except ValueError as e:
        raise InvalidArguments(_FIELD, "not a valid URI") from e
    if parts.scheme.lower() != "file":
        raise InvalidArguments(_FIELD, f"only file: URIs are supported, not {parts.scheme}:")
    if parts.netloc not in ("", "localhost"):
        raise InvalidArguments(_FIELD, "file: URIs on another host are not supported")
    path = unquote(parts.path)
    if not path:
        raise InvalidArguments(_FIELD, "the URI names no file")
    return path
