"""File contents held in memory: the owner of every cached byte.

An LRU bounded by **bytes** (cachetools), where an entry costs ``len(data)`` plus a fixed overhead.
Content is UTF-8 bytes, so that count is the real memory cost (measured resident memory:
1.03x for bytes, against up to 4x for a ``str`` holding one emoji).

An entry is trusted only while the file's ``(mtime_ns, size)`` on disk still match the ones seen
when it was read: every ``get`` does one ``os.stat`` (about 2 us), so an edit made behind the
watcher's back (or before its event arrives) is never served stale. A read that raced with a write
(``CachedFile.racy``) is never trusted at all. The watcher's events only free memory sooner.

The cache is changed on the event loop only; ``read_many`` hands misses to the loader's worker
threads and stores what comes back on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cachetools import Cache, LRUCache

from agentls.metrics import IoStats
from agentls.workspace.loader import CachedFile, LoadReport, load_files

__all__ = ["ENTRY_OVERHEAD_BYTES", "WARM_BATCH", "CachedFile", "FileCache"]

logger = logging.getLogger(__name__)

WARM_BATCH = 256
"""Files per batch when warming the cache: small enough that a request waits one batch at most."""

ENTRY_OVERHEAD_BYTES = 256
"""What an entry costs besides its data: the key ``Path``, the ``CachedFile``, the LRU links."""


def _entry_size(item: CachedFile) -> int:
    """What an entry counts against the budget: its UTF-8 bytes plus the fixed overhead.

    A file with secrets also holds its redacted copy, which counts too.
    """
    size = len(item.data) + ENTRY_OVERHEAD_BYTES
    if item.secrets is not None and item.secrets.data is not item.data:
        size += len(item.secrets.data)
    return size


class _CountingLRU(LRUCache[Path, CachedFile]):
    """An LRU that counts the entries it evicts to make room."""

    def __init__(self, maxsize: int) -> None:
        """An empty LRU of ``maxsize`` bytes."""
        super().__init__(maxsize=maxsize, getsizeof=_entry_size)
        self.evictions = 0
        """Entries dropped to make room for others (not invalidations)."""

    def popitem(self) -> tuple[Path, CachedFile]:
        """Evict the least recently used entry, counting it."""
        item = super().popitem()
        self.evictions += 1
        return item


class FileCache:
    """Recently read files, bounded by bytes, validated against the disk on every lookup."""

    def __init__(
        self,
        *,
        max_bytes: int,
        workers: int = 4,
        revalidate: bool = True,
        scan_secrets: bool = True,
        folders: Callable[[], Sequence[Path]] | None = None,
    ) -> None:
        """An empty cache.

        Args:
            max_bytes: the byte budget (``limits.cache_max_bytes``); 0 disables caching.
            workers: threads ``read_many`` may use for a cold load.
            revalidate: check ``(mtime_ns, size)`` on every hit. False trusts the watcher alone;
                it exists so ``agentls bench`` can show what that trust costs in stale reads
                (a write is served stale until its event arrives), never for the server.
            scan_secrets: look for secrets in what is loaded, in the reading threads
                (``CachedFile.secrets``). False exists so the bench can show what scanning
                costs; the server always scans.
            folders: the workspace folders at the time of a load; every file read must resolve
                into one of them, its target not deny-listed (``reader.read_regular``). The
                server always passes them; None is for tests and the bench.

        Raises:
            ValueError: a negative ``max_bytes`` or a ``workers`` below 1.
        """
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._max_bytes = max_bytes
        """The byte budget entries (with their overhead) must fit in."""
        self._workers = workers
        """How many slices a cold load is split into."""
        self._lru = _CountingLRU(max(max_bytes, 1))
        """The entries, by realpath."""
        self._hits = 0
        """Lookups answered from memory with a validated entry."""
        self._misses = 0
        """Lookups that found nothing usable (absent, stale or racy)."""
        self._stale = 0
        """Entries dropped because the file had changed (or vanished) on disk."""
        self._evictions_before_clear = 0
        """Evictions counted by LRUs replaced by ``clear``."""
        self._revalidate = revalidate
        """Whether hits are checked against the disk (always, in the server)."""
        self._scan_secrets = scan_secrets
        """Whether loads scan for secrets (always, in the server)."""
        self.io = IoStats()
        """What loading misses from disk cost (files, bytes, time, parallelism)."""
        self._folders = folders
        """Where files may be read from, asked at each load (the folders can change)."""

    def _within(self) -> tuple[Path, ...] | None:
        """The folders every read of this load must resolve into (None: not checked)."""
        return tuple(self._folders()) if self._folders is not None else None

    def get(self, path: Path) -> CachedFile | None:
        """The cached content of ``path`` if it is still what is on disk.

        Args:
            path: a realpath.

        Returns:
            The entry, or None (and the entry dropped) when the file changed, vanished, or was
            read while it was being written.
        """
        item = self._lru.get(path)
        if item is None:
            self._misses += 1
            return None
        if not self._revalidate:
            self._hits += 1
            return item
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            st = None
        if st is None or item.racy or st.st_mtime_ns != item.mtime_ns or st.st_size != item.size:
            self._lru.pop(path, None)
            self._stale += 1
            self._misses += 1
            return None
        self._hits += 1
        return item

    def still_holds(self, entries: Sequence[tuple[Path, CachedFile]]) -> bool:
        """Whether each ``(path, item)`` is still this cache's entry and still what is on disk.

        The check ``get`` makes (one ``os.stat`` per file), for a caller that kept the entries of
        an earlier lookup (the context builder's last assembly). When all hold, each counts as a
        hit and goes to the front of the LRU, as ``get`` would have done; at the first that does
        not, nothing is counted or moved: the caller looks the files up again with ``get``, which
        judges (and counts) each one.
        """
        lru = self._lru
        peek = Cache.__getitem__  # a read that leaves the LRU order alone
        stat = os.stat
        revalidate = self._revalidate
        for path, item in entries:
            try:
                held = peek(lru, path)
            except KeyError:
                return False
            if held is not item:
                return False
            if revalidate:
                try:
                    st = stat(path)
                except (OSError, ValueError):
                    return False
                if item.racy or st.st_mtime_ns != item.mtime_ns or st.st_size != item.size:
                    return False
        touch = lru.__getitem__  # the LRU's own refresh, as a hit through ``get``
        for path, _ in entries:
            touch(path)
        self._hits += len(entries)
        return True

    def put(self, path: Path, item: CachedFile) -> None:
        """Remember a file's content, evicting the least recently used ones to make room.

        A racy read is not kept (it could never be served), nor is an entry bigger than the
        whole budget.

        Args:
            path: a realpath.
            item: the content as the loader read it.
        """
        if item.racy or _entry_size(item) > self._max_bytes:
            self._lru.pop(path, None)
            return
        self._lru[path] = item

    async def read_many(
        self, paths: Sequence[Path], *, max_file_bytes: int
    ) -> dict[Path, CachedFile | str]:
        """The content of many files: validated hits from memory, misses read in parallel.

        Args:
            paths: realpaths; duplicates are looked up once.
            max_file_bytes: the per-file size limit (a cached file above it is ``too_large``).

        Returns:
            Each path's content or failure reason (see ``loader.load_files``), in the order given.
        """
        found: dict[Path, CachedFile | str] = {}
        misses: list[Path] = []
        order = list(dict.fromkeys(paths))
        get = self.get  # the hot loop of a warm run: about 3 us per file, 2 of them the stat
        for path in order:
            item = get(path)
            if item is None:
                misses.append(path)
            elif item.size > max_file_bytes:
                found[path] = "too_large"
            else:
                found[path] = item
        if not misses:
            return found
        loaded = await load_files(
            misses,
            max_file_bytes=max_file_bytes,
            workers=self._workers,
            on_report=self._record_load,
            scan_secrets=self._scan_secrets,
            within=self._within(),
        )
        for path, value in loaded.items():
            if isinstance(value, CachedFile):
                self.put(path, value)
            found[path] = value
        return {path: found[path] for path in order}

    async def warm(
        self,
        paths: Sequence[Path],
        *,
        max_file_bytes: int,
        max_bytes: int,
        batch: int = WARM_BATCH,
    ) -> int:
        """Load files that are not cached yet, in the background, so the first run is warm.

        Batches of ``batch`` files are read in worker threads (the loader picks sequential or
        sliced reading), and the event loop is free between batches, so requests are answered
        while the workspace loads. It stops once ``max_bytes`` of content were loaded; entries
        already cached are left alone (their LRU order too).

        Args:
            paths: realpaths, most wanted first (``WorkspaceIndex.usable``).
            max_file_bytes: the per-file size limit.
            max_bytes: how much content to load at most (keep it under the budget, or the
                last files loaded evict the first).

        Returns:
            How many files were loaded into the cache.
        """
        loaded = 0
        total = 0
        todo = [p for p in dict.fromkeys(paths) if p not in self._lru]
        for start in range(0, len(todo), max(1, batch)):
            if total >= max_bytes:
                break
            got = await load_files(
                todo[start : start + batch],
                max_file_bytes=max_file_bytes,
                workers=self._workers,
                on_report=self._record_load,
                scan_secrets=self._scan_secrets,
                within=self._within(),
            )
            for path, value in got.items():
                if isinstance(value, CachedFile) and path not in self._lru:
                    self.put(path, value)
                    if path in self._lru:
                        loaded += 1
                        total += len(value.data)
            await asyncio.sleep(0)  # let queued requests run between batches
        return loaded

    def _record_load(self, report: LoadReport) -> None:
        """Count a batch read from disk in the I/O figures."""
        self.io.record(
            files=report.files,
            loaded=report.loaded,
            nbytes=report.bytes,
            seconds=report.seconds,
            strategy=report.strategy,
            workers=report.workers,
        )

    def invalidate(self, paths: Iterable[Path]) -> int:
        """Forget the given files (after a watcher event or an editor save).

        Args:
            paths: realpaths; unknown ones are ignored.

        Returns:
            How many entries were dropped.
        """
        dropped = 0
        for path in paths:
            if self._lru.pop(path, None) is not None:
                dropped += 1
        return dropped

    def clear(self) -> int:
        """Forget everything (``agentls.cache.clear``); counters other than entries are kept.

        Returns:
            How many entries were dropped.
        """
        dropped = len(self._lru)
        self._evictions_before_clear += self._lru.evictions
        self._lru = _CountingLRU(max(self._max_bytes, 1))
        return dropped

    def stats(self) -> dict[str, Any]:
        """Figures for ``agentls.metrics``.

        Returns:
            ``hits``, ``misses``, ``hit_rate`` (0.0 before any lookup), ``entries``, ``bytes``
            (the budget in use, overhead included), ``max_bytes``, ``evictions``, ``stale`` and
            ``io`` (``IoStats.snapshot``: files and bytes loaded, load time, parallelism).
        """
        lookups = self._hits + self._misses
        return {
            "hits": self._hits,
            "misses": self._misses,
            "hit_rate": self._hits / lookups if lookups else 0.0,
            "entries": len(self._lru),
            "bytes": int(self._lru.currsize),
            "max_bytes": self._max_bytes,
            "evictions": self._evictions_before_clear + self._lru.evictions,
            "stale": self._stale,
            "io": self.io.snapshot(),
        }
