"""Memory profiling on demand: the owner of this process's ``tracemalloc`` session.

Nothing is traced until ``start``: tracing every allocation costs time and memory (each live
block carries a trace), so a server that nobody profiles pays nothing. ``snapshot`` then answers
three questions a leak hunt asks:

- where the traced memory is now: the top allocation sites (``file:line``, bytes, blocks);
- what changed since the previous snapshot (or since ``start``): the same sites with their
  growth, largest first, so a leak shows up as a site that grows between two snapshots taken
  some runs apart;
- which kinds of object there are most of: counts and shallow sizes by type, over the objects
  the garbage collector tracks (containers and instances; ``bytes`` and ``str`` are not tracked
  and show up among the allocation sites instead).

``stop`` ends tracing and frees the traces. The previous snapshot is kept only as per-site totals
(a few thousand rows), never as a copy of every trace. Taking a snapshot walks every trace and
every object, which takes from milliseconds to a second; it runs in a worker thread so the event
loop keeps answering, and snapshots are taken one at a time.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from dataclasses import dataclass
from typing import Any

from agentls.errors import AgentlsError

TRACEBACK_FRAMES = 1
"""Frames kept per allocation: the site that allocated is what a snapshot groups by."""

_IGNORED_FILES = (
    __file__,
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)
"""Allocations of the profiler's own machinery, left out of every snapshot."""

Site = tuple[str, int]
"""An allocation site: file name and line number."""


class NotProfiling(AgentlsError):
    """A snapshot was asked for while tracing is off."""

    def __init__(self) -> None:
        super().__init__(
            "memory profiling is not started: call agentls.memory.profile with "
            '{"action": "start"} first'
        )


@dataclass(frozen=True)
class _Taken:
    """One snapshot's figures, computed off the loop."""

    totals: dict[Site, tuple[int, int]]
    """Bytes and blocks per allocation site."""
    types: list[tuple[str, int, int]]
    """Type name, object count, shallow bytes; every tracked type."""
    traced: int
    peak: int
    overhead: int


def _site_totals(snapshot: tracemalloc.Snapshot) -> dict[Site, tuple[int, int]]:
    filtered = snapshot.filter_traces([tracemalloc.Filter(False, f) for f in _IGNORED_FILES])
    totals: dict[Site, tuple[int, int]] = {}
    for stat in filtered.statistics("lineno"):
        frame = stat.traceback[0]
        totals[(frame.filename, frame.lineno)] = (stat.size, stat.count)
    return totals


def _type_counts() -> list[tuple[str, int, int]]:
    """Objects the collector tracks, by type: count and shallow size (``sys.getsizeof``)."""
    counts: dict[type, list[int]] = {}
    getsizeof = sys.getsizeof
    for obj in gc.get_objects():
        kind = type(obj)
        row = counts.get(kind)
        if row is None:
            row = counts[kind] = [0, 0]
        row[0] += 1
        try:
            row[1] += getsizeof(obj)
        except Exception:  # noqa: S112 - a __sizeof__ that fails counts as 0 bytes
            continue
    return [(_type_name(kind), n, size) for kind, (n, size) in counts.items()]


def _type_name(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", None) else f"{module}.{kind.__qualname__}"


def _take() -> _Taken:
    """Everything a snapshot reports, in one pass (run in a worker thread).

    Garbage is collected first: objects kept only by reference cycles (a finished task's frame,
    an exception's traceback) would otherwise show up as a leak until the collector's next pass.
    """
    gc.collect()
    totals = _site_totals(tracemalloc.take_snapshot())
    traced, peak = tracemalloc.get_traced_memory()
    overhead = tracemalloc.get_tracemalloc_memory()
    return _Taken(totals, _type_counts(), traced, peak, overhead)


class MemoryProfiler:
    """Start, snapshot and stop ``tracemalloc`` for the whole process; changed on the loop only."""

    def __init__(self) -> None:
        """Not tracing; nothing is imported or allocated beyond this object."""
        self._previous: dict[Site, tuple[int, int]] | None = None
        """Per-site totals of the last snapshot (or of ``start``), for the difference."""
        self._snapshots = 0
        """Snapshots taken since ``start``."""
        self._lock = asyncio.Lock()
        """One snapshot at a time: each difference is against the one before it."""

    @property
    def tracing(self) -> bool:
        """Whether allocations are being traced."""
        return tracemalloc.is_tracing()

    async def start(self) -> dict[str, Any]:
        """Start tracing (already tracing: keep going); later snapshots compare to this point."""
        async with self._lock:
            started = not tracemalloc.is_tracing()
            if started:
                tracemalloc.start(TRACEBACK_FRAMES)
            # Next to nothing is traced yet when just started; a restart may have a lot.
            baseline = await asyncio.to_thread(lambda: _site_totals(tracemalloc.take_snapshot()))
            self._previous = baseline
            self._snapshots = 0
        return {"tracing": True, "started": started, "frames": tracemalloc.get_traceback_limit()}

    def stop(self) -> dict[str, Any]:
        """Stop tracing and free the traces (a no-op when not tracing)."""
        was = tracemalloc.is_tracing()
        if was:
            tracemalloc.stop()
        self._previous = None
        self._snapshots = 0
        return {"tracing": False, "stopped": was}

    async def snapshot(self, top: int) -> dict[str, Any]:
        """The ``top`` allocation sites, the ``top`` changes since the last snapshot, and the
        ``top`` types by object count.

        Raises:
            NotProfiling: tracing is off (``start`` first).
        """
        async with self._lock:
            if not tracemalloc.is_tracing():
                raise NotProfiling
            taken = await asyncio.to_thread(_take)
            if not tracemalloc.is_tracing():  # stopped while the thread worked
                raise NotProfiling
            previous = self._previous or {}
            self._previous = taken.totals
            self._snapshots += 1
        return {
            "tracing": True,
            "snapshot": self._snapshots,
            "compared_with": "start" if self._snapshots == 1 else f"snapshot {self._snapshots - 1}",
            "traced_bytes": taken.traced,
            "peak_traced_bytes": taken.peak,
            "tracemalloc_bytes": taken.overhead,
            "top": _top_sites(taken.totals, top),
            "diff": _top_changes(taken.totals, previous, top),
            "types": _top_types(taken.types, top),
        }


def _site_row(site: Site) -> dict[str, Any]:
    return {"file": site[0], "line": site[1]}


def _top_sites(totals: dict[Site, tuple[int, int]], top: int) -> list[dict[str, Any]]:
    ranked = sorted(totals.items(), key=lambda kv: kv[1][0], reverse=True)[:top]
    return [{**_site_row(site), "size": size, "count": count} for site, (size, count) in ranked]


def _top_changes(
    now: dict[Site, tuple[int, int]], before: dict[Site, tuple[int, int]], top: int
) -> list[dict[str, Any]]:
    """Sites whose traced bytes changed, the largest change (growth or shrinkage) first."""
    rows = []
    for site in now.keys() | before.keys():
        size, count = now.get(site, (0, 0))
        old_size, old_count = before.get(site, (0, 0))
        if size != old_size or count != old_count:
            rows.append((site, size, size - old_size, count, count - old_count))
    rows.sort(key=lambda r: (abs(r[2]), abs(r[4])), reverse=True)
    return [
        {
            **_site_row(site),
            "size": size,
            "size_diff": size_diff,
            "count": count,
            "count_diff": count_diff,
        }
        for site, size, size_diff, count, count_diff in rows[:top]
    ]


def _top_types(types: list[tuple[str, int, int]], top: int) -> list[dict[str, Any]]:
    ranked = sorted(types, key=lambda t: (t[1], t[2]), reverse=True)[:top]
    return [{"type": name, "count": count, "size": size} for name, count, size in ranked]
