"""Generated workspaces and page-cache control: the owner of the bench's files on disk.

Trees are deterministic (same names, sizes and bytes for a given shape) so runs compare.
"Cold" means the file data is not in the page cache: ``drop_page_cache`` asks the kernel to drop
each file's pages with ``posix_fadvise(POSIX_FADV_DONTNEED)``, which needs no privileges and
keeps dentries and inodes cached (measured on the 2-vCPU machine: a little faster than
``drop_caches``, and the same ordering of methods). Where ``posix_fadvise`` is missing, cold
runs are reported as skipped.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

CAN_DROP = hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")
"""Whether cold measurements are possible here."""

_LINE = b"    value_%06d = compute(%06d, 'generated line of source text for agentls bench')\n"


def file_bytes(i: int, size: int) -> bytes:
    """The content of generated file ``i``: Python-looking ASCII of exactly ``size`` bytes."""
    head = b"def function_%d():\n" % i
    body = bytearray(head)
    n = 0
    while len(body) < size:
        body += _LINE % (n, i)
        n += 1
    out = bytes(body[: size - 1]) + b"\n"
    return out


def make_tree(root: Path, files: int, size: int, *, per_dir: int = 100) -> list[Path]:
    """Write ``files`` files of ``size`` bytes under ``root/src`` (kept if already there).

    Returns:
        The files' realpaths, in a stable order.
    """
    root = Path(os.path.realpath(root))
    paths: list[Path] = []
    for i in range(files):
        path = root / "src" / f"pkg{i // per_dir:04d}" / f"mod{i:06d}.py"
        paths.append(path)
        if path.is_file() and path.stat().st_size == size:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file_bytes(i, size))
    return paths


def real_dir(path: Path) -> Path:
    """``path`` created if needed, as a realpath (what the server's roots hold)."""
    path.mkdir(parents=True, exist_ok=True)
    return Path(os.path.realpath(path))


def write_agent(root: Path, name: str, body: str, front: str) -> Path:
    """An agent definition in ``root/.agents/<name>.md`` (front matter lines, then the body)."""
    path = root / ".agents" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(front).strip()}\n---\n{body}\n", encoding="utf-8")
    return path


def drop_page_cache(paths: Iterable[Path]) -> int:
    """Drop the page cache of each file (written data is flushed first so it can be dropped).

    Returns:
        How many files were dropped; 0 where ``posix_fadvise`` is unavailable.
    """
    if not CAN_DROP:
        return 0
    dropped = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            dropped += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return dropped


def warm_page_cache(paths: Iterable[Path]) -> None:
    """Read every file once so its pages are cached."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass
        except OSError:
            pass
