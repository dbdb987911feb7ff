"""The one way the server opens a file from a workspace: regular, bounded, contained, not secret.

Every file the server reads from a repository goes through ``read_regular``: agent definitions,
the workspace ``agentls.toml``, ignore files, context files (through ``loader``), and what the
editor's buffers fall back to on disk. The repository is hostile input, so each read:

* judges containment on the realpath when ``within`` names the workspace folders: a path whose
  realpath is in none of them is ``outside_workspace``, one whose realpath (or whose own name,
  for a followed symlink) is on the deny-list (``filters.is_secret``) is ``secret``. This is done
  at every read, so the watcher's reload path is judged exactly as the start-up scan was;
* opens with ``O_NONBLOCK`` (a FIFO or a device cannot block the open), ``O_NOFOLLOW`` (a last
  component swapped for a symlink after the check is refused) and ``O_NOCTTY``;
* asks the kernel which file it actually opened (``/proc/self/fd``): a directory on the way
  replaced by a symlink between the check and the open leads elsewhere, and is refused;
* ``fstat``s the open descriptor: anything but a regular file is ``not_a_file`` (``/dev/zero``,
  ``/dev/stdin``, a FIFO, a socket), and a size above the cap is ``too_large`` before one byte is
  read;
* reads at most ``max_bytes + 1`` bytes whatever the file claims, so a file that grows after the
  ``fstat`` is still ``too_large`` and memory stays bounded.

A failure is a value (a reason string), never an exception. Out of scope: a hard link to a file
outside the workspace is, to the kernel, a file inside it; nothing short of refusing every file
with ``st_nlink > 1`` would tell, and that would refuse ordinary repositories
(``docs/security.md``).

Blocking: after the checks above a read cannot wait on another process, but it still touches
the disk. Callers that read many files or may meet a slow filesystem (context files, the ignore
files of a walk) call this from a worker thread; the few single small reads done on the event
loop (one definition file after a watcher event, the workspace ``agentls.toml``) are bounded by
their cap (1 MiB).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from agentls.workspace import filters

logger = logging.getLogger(__name__)

ReadFailure = Literal[
    "missing", "too_large", "not_a_file", "unreadable", "outside_workspace", "secret"
]
"""Why a file was not read. The context manifest shows these; other callers map them."""

OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)
"""How every workspace file is opened (see the module docstring for why each flag)."""

_CHUNK = 1 << 20
"""The most one ``os.read`` asks for when a file grew after its ``fstat``."""


class RawFile(NamedTuple):
    """The bytes of a regular file, with the ``fstat`` taken on the descriptor they came from.

    A named tuple, the cheapest record to make: one is made per file read, thousands per run."""

    data: bytes
    """At most the cap; exactly what was read."""
    mtime_ns: int
    """``st_mtime_ns`` of the open file, before it was read."""
    size: int
    """``st_size`` of the open file at that moment (``len(data)`` may differ)."""
    read_at_ns: int
    """``time.time_ns()`` just before reading (the loader's racy-read test)."""


def _rel_in(path: Path, within: Sequence[Path]) -> str | None:
    """``path`` relative to the deepest folder of ``within`` that holds it (``""`` for a folder
    itself), or None when none does. String arithmetic: this runs once per file read, and
    ``Path.is_relative_to`` costs more than the read of a small cached file."""
    text = os.fspath(path)
    best: str | None = None
    for folder in within:
        root = os.fspath(folder)
        if text == root:
            rel = ""
        else:
            prefix = root if root.endswith("/") else f"{root}/"
            if not text.startswith(prefix):
                continue
            rel = text[len(prefix) :]
        if best is None or len(rel) < len(best):
            best = rel
    return best


def judge(path: Path, within: Sequence[Path], real: Path | None = None) -> ReadFailure | None:
    """Whether a path may be read from the workspace, by its realpath and by its own name.

    Args:
        path: the path as found (a definition's name in ``.agents/``) or a realpath.
        within: the workspace folders (realpaths).
        real: ``path``'s realpath when the caller has it already.

    Returns:
        ``outside_workspace`` when the realpath is in no folder, ``secret`` when the realpath or
        the name lies on the deny-list; None when the file may be read.
    """
    if real is None:
        real = Path(os.path.realpath(path))
    verdict = _judge_real(real, within)
    if verdict is None and real != path:
        named = _rel_in(path, within)
        if named and filters.is_secret(named):
            return "secret"
    return verdict


def _judge_real(real: Path, within: Sequence[Path]) -> ReadFailure | None:
    """``judge`` for a path known to be a realpath: no system call, only path arithmetic."""
    rel = _rel_in(real, within)
    if rel is None:
        logger.info("refusing %s: it resolves outside the workspace folders", real)
        return "outside_workspace"
    if rel and filters.is_secret(rel):
        logger.info("refusing %s: it resolves to a file on the deny-list", real)
        return "secret"
    return None


def _opened_elsewhere(fd: int, path: Path) -> ReadFailure | None:
    """Whether the open file is not the one asked for (a directory on the way was swapped).

    ``O_NOFOLLOW`` guards only the last component; a directory replaced by a symlink between the
    containment check and ``open`` would lead out of the workspace. The kernel's own name for the
    descriptor tells. Where ``/proc`` is missing, the realpath of ``path`` is compared instead
    (one more race window, but the same verdict for a tree that holds still).
    """
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        opened = os.path.realpath(path)
    if opened == os.fspath(path):
        return None
    if opened.endswith(" (deleted)"):
        return "missing"
    logger.warning("refusing %s: it resolved elsewhere when opened", path)
    return "unreadable"


def read_regular(
    path: Path,
    *,
    max_bytes: int,
    within: Sequence[Path] | None,
    follow_symlink: bool = False,
) -> RawFile | ReadFailure:
    """Read one regular file, bounded, after the containment and deny-list checks; blocking.

    Args:
        path: the file. Without ``follow_symlink`` it must be a realpath: a symlink as the last
            component is ``not_a_file`` and a path that leads elsewhere when opened is
            ``unreadable``.
        max_bytes: a file larger than this is ``too_large`` and not read (checked on the open
            descriptor, and again while reading).
        within: the workspace folders (realpaths) the file must resolve into, its target not
            deny-listed; None only for files that are not the workspace's (the user's own
            configuration file).
        follow_symlink: read what a symlink points to (agent definitions, which are known by
            their name in the definition folder); the target is judged, then opened by its
            realpath, never through the link.

    Returns:
        The content, or why there is none (``missing``, ``too_large``, ``not_a_file``,
        ``unreadable``, ``outside_workspace``, ``secret``).
    """
    try:
        if follow_symlink:
            target = Path(os.path.realpath(path))
            verdict = judge(path, within, target) if within is not None else None
        else:
            # A realpath: judged by arithmetic alone. If it is not one (a directory on the way
            # is a link, now or by the time of the open), the kernel's name for the open file
            # differs from it and the read is refused below.
            target = path
            verdict = _judge_real(path, within) if within is not None else None
        if verdict is not None:
            return verdict
        fd = os.open(target, OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
            return "not_a_file"
        return "unreadable"
    except ValueError:  # an embedded NUL: callers resolve paths first, but never crash
        return "missing"
    try:
        moved = _opened_elsewhere(fd, target)
        if moved is not None:
            return moved
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not_a_file"
        if st.st_size > max_bytes:
            return "too_large"
        read_at_ns = time.time_ns()
        limit = max_bytes + 1
        want = min(st.st_size + 1, limit)
        data = os.read(fd, want)
        if len(data) == want and want < limit:
            # The file grew since fstat: keep reading, bounded by the limit.
            chunks = [data]
            total = len(data)
            while total < limit:
                chunk = os.read(fd, min(limit - total, _CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
        if len(data) > max_bytes:
            return "too_large"
    except OSError as e:
        logger.debug("reading %s failed: %s", path, e.strerror or type(e).__name__)
        return "unreadable"
    finally:
        os.close(fd)
    return RawFile(data=data, mtime_ns=st.st_mtime_ns, size=st.st_size, read_at_ns=read_at_ns)
