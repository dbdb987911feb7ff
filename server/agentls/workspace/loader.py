"""Reading files from disk, in parallel when that pays, and the value a read produces.

Measured on the project's 2-vCPU machine (``agentls bench --scenario load``): with the page cache
warm, one thread reading sequentially is fastest (1,000 x 10 KB in 21 ms) and thread pools are 2-5x
slower; with a cold cache, one contiguous slice per worker thread is fastest (94 ms against 154 ms
sequential), while a task per file is slower than either. Which case holds is not knowable up front,
so ``load_files`` reads a small probe sequentially, times it, and only splits the rest into slices
when the probe ran at cold-cache speed.

Every read goes through ``reader.read_regular`` (hardening rows F6, S2): regular files only,
opened without blocking or following a last symlink, the size checked on the open descriptor and
bounded while reading, containment in the workspace folders and the deny-list judged at the read.
A failure is a value (a reason string), never an exception: one unreadable file does not fail
the others.

Secrets inside a file are looked for here too (``scan_secrets``), in the worker thread that read it:
on a cold load the scan of one file overlaps the disk reads of the others, and the result is kept
with the content, so it is computed once per version of a file.

The content kept is UTF-8 bytes, checked once here: a join of cached files can then be decoded in
one go, and memory is counted exactly by ``len`` (a ``str`` with one emoji costs 4x).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import xxhash

from agentls.context.secrets import Redaction, redact
from agentls.workspace.filters import looks_binary
from agentls.workspace.reader import ReadFailure, read_regular

logger = logging.getLogger(__name__)

FailureReason = ReadFailure | Literal["binary"]
"""Why a file could not be read; the context manifest shows these to the user."""

Strategy = Literal["auto", "sequential", "sliced"]

_UTF8_BOM = b"\xef\xbb\xbf"

PROBE_FILES = 32
"""How many files ``load_files`` reads sequentially to tell a warm page cache from a cold one."""

_WARM_SECONDS_PER_FILE = 20e-6
"""Warm-cache cost of open+fstat+read+close of a small file (21 us measured for 10 KB files)."""

_WARM_SECONDS_PER_BYTE = 1e-9
"""Warm-cache copy cost per byte (about 1 GB/s including the UTF-8 check and hash)."""

_COLD_FACTOR = 1.8
"""A probe this many times slower than the warm estimate means the disk is being hit.

``agentls bench`` (scenario ``load``) measured 1,000 x 10 KB at 19 us per file warm and 74 us
cold (``posix_fadvise`` drop; the virtio disk is fast because the host caches too): 2.5 x the
30 us estimate missed that cold case. At 1.8 the threshold (54 us) stays 2.9x above the warm
cost. A wrong "cold" costs little (sliced reading is about even with sequential when warm at
1,000 files, 1.5x slower at 10,000); a wrong "warm" costs 1.6-2x."""


@dataclass(frozen=True)
class CachedFile:
    """A file's content as read, with what identifies that version of the file on disk."""

    data: bytes
    """The content as valid UTF-8 (a BOM dropped; invalid sequences replaced by U+FFFD)."""
    mtime_ns: int
    """``st_mtime_ns`` from the ``fstat`` of the open file, before it was read."""
    size: int
    """``st_size`` on disk at that moment (may differ from ``len(data)``)."""
    hash: int
    """xxh3_64 of ``data``: free to compute (0.025 ms/MB) and enough to spot a changed file."""
    racy: bool = False
    """The file changed so shortly before it was read that a later write could keep the same
    ``(mtime_ns, size)``; such a read must not be trusted as current later (git's "racy clean")."""
    secrets: Redaction | None = None
    """``context.secrets.redact(data)`` when the load scanned it (None: not scanned). When the
    file is clean, its ``data`` is ``data`` itself, so a clean file costs no extra memory."""


@dataclass(frozen=True)
class LoadReport:
    """What one ``load_files`` call did: the I/O figures ``agentls.metrics`` reports."""

    files: int
    """Files asked for (after removing duplicates)."""
    loaded: int
    """Files actually read into memory (the rest are failures)."""
    bytes: int
    """Bytes of content read."""
    seconds: float
    """Wall time of the whole call, as the event loop saw it."""
    strategy: Literal["sequential", "sliced"]
    """How it was read in the end (``auto`` resolves to one of these)."""
    workers: int
    """Threads that read at the same time (1 for sequential)."""


def _racy_window_ns(mtime_ns: int) -> int:
    """How recent an mtime makes a read racy, given the timestamp granularity it reveals."""
    if mtime_ns % 1_000_000_000 == 0:
        return 2_000_000_000  # whole seconds (FAT keeps 2 s): a second-granularity filesystem
    # Finer stamps still come from a coarse clock on older kernels: one tick, up to 10 ms.
    return 20_000_000


def _as_utf8(data: bytes) -> bytes:
    """The content as valid UTF-8: BOM dropped, invalid sequences replaced."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").encode("utf-8")
    return data


def read_file(
    path: Path,
    *,
    max_file_bytes: int,
    scan_secrets: bool = False,
    within: Sequence[Path] | None = None,
) -> CachedFile | FailureReason:
    """Read one file through ``reader.read_regular``; blocking, for a worker thread.

    Args:
        path: a realpath. A symlink as the last component is refused (``not_a_file``), and so
            is a path that leads elsewhere when opened (``unreadable``).
        max_file_bytes: files larger than this are not read (``too_large``).
        scan_secrets: also look for secrets in the content (``CachedFile.secrets``).
        within: the workspace folders the file must resolve into (the server always passes
            them; None is for tests and the bench reading their own trees).

    Returns:
        The content, or why there is none.
    """
    raw = read_regular(path, max_bytes=max_file_bytes, within=within)
    if isinstance(raw, str):
        return raw
    if looks_binary(raw.data):
        return "binary"
    text = _as_utf8(raw.data)
    return CachedFile(
        data=text,
        mtime_ns=raw.mtime_ns,
        size=raw.size,
        hash=xxhash.xxh3_64_intdigest(text),
        racy=raw.read_at_ns - raw.mtime_ns < _racy_window_ns(raw.mtime_ns),
        secrets=redact(text) if scan_secrets else None,
    )


def read_files(
    paths: Sequence[Path],
    *,
    max_file_bytes: int,
    scan_secrets: bool = False,
    within: Sequence[Path] | None = None,
) -> dict[Path, CachedFile | str]:
    """Read files one after the other in the calling thread (the fastest way when warm).

    Args:
        paths: realpaths; duplicates are read once.
        max_file_bytes: the per-file size limit.
        scan_secrets: also look for secrets in each content.
        within: the workspace folders each file must resolve into (``read_file``).

    Returns:
        Each path's content or failure reason, in the order given.
    """
    return {
        path: read_file(
            path, max_file_bytes=max_file_bytes, scan_secrets=scan_secrets, within=within
        )
        for path in dict.fromkeys(paths)
    }


def _timed_read(
    paths: Sequence[Path],
    max_file_bytes: int,
    scan_secrets: bool,
    within: Sequence[Path] | None,
) -> tuple[dict[Path, CachedFile | str], float, int]:
    """``read_files`` plus the duration of the reads alone and the bytes they read.

    The secrets scan runs after the clock stops: the probe must time the disk, not the CPU.
    """
    started = time.perf_counter()
    result = read_files(paths, max_file_bytes=max_file_bytes, within=within)
    elapsed = time.perf_counter() - started
    nbytes = 0
    for path, value in result.items():
        if isinstance(value, CachedFile):
            nbytes += len(value.data)
            if scan_secrets:
                result[path] = dataclasses.replace(value, secrets=redact(value.data))
    return result, elapsed, nbytes


def probe_looks_cold(files: int, nbytes: int, elapsed: float) -> bool:
    """Whether a sequential read ran at cold-cache speed.

    Args:
        files: how many files were read.
        nbytes: how many bytes they held.
        elapsed: how long the read took, in seconds.
    """
    warm = files * _WARM_SECONDS_PER_FILE + nbytes * _WARM_SECONDS_PER_BYTE
    return elapsed > _COLD_FACTOR * warm


async def load_files(
    paths: Sequence[Path],
    *,
    max_file_bytes: int,
    workers: int = 4,
    strategy: Strategy = "auto",
    on_report: Callable[[LoadReport], None] | None = None,
    scan_secrets: bool = False,
    within: Sequence[Path] | None = None,
) -> dict[Path, CachedFile | str]:
    """Read files off the event loop, choosing sequential or sliced reading by measurement.

    Args:
        paths: realpaths; duplicates are read once.
        max_file_bytes: the per-file size limit.
        workers: the number of slices (threads) used when reading in parallel.
        strategy: ``"auto"`` probes; ``"sequential"`` and ``"sliced"`` force one way (tests and
            benchmarks).
        on_report: called on the loop with the call's figures once it is done (metrics).
        scan_secrets: also look for secrets in each content, in the reading thread.
        within: the workspace folders each file must resolve into (``read_file``).

    Returns:
        Each path's content or failure reason (``missing``, ``too_large``, ``binary``,
        ``not_a_file``, ``unreadable``, ``outside_workspace``, ``secret``), in the order given.

    Raises:
        ValueError: ``workers`` < 1 or ``max_file_bytes`` < 0.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if max_file_bytes < 0:
        raise ValueError("max_file_bytes must not be negative")
    unique = list(dict.fromkeys(paths))
    if not unique:
        return {}
    started = time.perf_counter()
    folders = tuple(within) if within is not None else None
    result, used = await _load(unique, max_file_bytes, workers, strategy, scan_secrets, folders)
    if on_report is not None:
        contents = [v for v in result.values() if isinstance(v, CachedFile)]
        on_report(
            LoadReport(
                files=len(unique),
                loaded=len(contents),
                bytes=sum(len(v.data) for v in contents),
                seconds=time.perf_counter() - started,
                strategy="sequential" if used == 1 else "sliced",
                workers=used,
            )
        )
    return result


async def _load(
    unique: list[Path],
    max_file_bytes: int,
    workers: int,
    strategy: Strategy,
    scan: bool,
    within: tuple[Path, ...] | None,
) -> tuple[dict[Path, CachedFile | str], int]:
    """``load_files``'s reading, returning how many threads read at once in the end."""
    small = strategy == "auto" and len(unique) <= PROBE_FILES
    read = functools.partial(
        read_files, max_file_bytes=max_file_bytes, scan_secrets=scan, within=within
    )
    if strategy == "sequential" or workers == 1 or small:
        return await asyncio.to_thread(read, unique), 1
    result: dict[Path, CachedFile | str] = {}
    rest = unique
    if strategy == "auto":
        probe, rest = unique[:PROBE_FILES], unique[PROBE_FILES:]
        result, elapsed, nbytes = await asyncio.to_thread(
            _timed_read, probe, max_file_bytes, scan, within
        )
        if not probe_looks_cold(len(probe), nbytes, elapsed):
            result.update(await asyncio.to_thread(read, rest))
            return result, 1
        logger.debug("cold read of %d files: %.1f ms for the probe", len(unique), elapsed * 1e3)
    step = -(-len(rest) // workers)
    slices = [rest[i : i + step] for i in range(0, len(rest), step)]
    parts = await asyncio.gather(*(asyncio.to_thread(read, part) for part in slices))
    for part in parts:
        result.update(part)
    return result, len(slices)
