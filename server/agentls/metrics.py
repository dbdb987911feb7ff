"""Metrics: owner of the counters about the server itself, and of the snapshot that reports them.

The engine reports every finished run here (``run_finished``): counts by status and the durations
of the runs that actually ran, kept in a bounded window so memory does not grow with the number of
runs. ``snapshot`` adds the process's own figures from psutil (resident memory, peak, CPU time,
threads, live child processes) and whatever sections the caller owns (cache, index, history), so
one request answers "how is the server doing" without this module knowing those services.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import psutil

from agentls.execution.records import RunRecord

LATENCY_WINDOW = 1024
"""How many recent run durations the latency percentiles are computed over."""

_RESERVED = frozenset({"memory", "runs", "uptime_s"})

LOAD_WINDOW = 256
"""How many recent loads the I/O percentiles are computed over."""


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class IoStats:
    """File-loading figures: totals since start and a bounded window of recent loads.

    The file cache records every batch it loads from disk here (``record``), on the event loop;
    totals are plain integers and the window is a fixed-size deque, so memory stays constant
    however long the server runs.
    """

    def __init__(self, *, window: int = LOAD_WINDOW) -> None:
        """No loads yet."""
        self.loads = 0
        """Batches loaded."""
        self.files = 0
        """Files asked for across all batches."""
        self.files_loaded = 0
        """Files read into memory."""
        self.bytes = 0
        """Bytes of content read."""
        self.seconds = 0.0
        """Total wall time spent loading (as the event loop waited for it)."""
        self.by_strategy: Counter[str] = Counter()
        """Batches read sequentially or in slices."""
        self.max_workers = 0
        """The most threads that read at once in one batch."""
        self._recent: deque[tuple[float, int, int]] = deque(maxlen=max(1, window))
        """``(milliseconds, files, workers)`` of the most recent batches."""

    def record(
        self, *, files: int, loaded: int, nbytes: int, seconds: float, strategy: str, workers: int
    ) -> None:
        """Count one loaded batch.

        Args:
            files: files asked for.
            loaded: files read into memory.
            nbytes: bytes read.
            seconds: wall time of the batch.
            strategy: ``sequential`` or ``sliced``.
            workers: threads that read at once.
        """
        self.loads += 1
        self.files += files
        self.files_loaded += loaded
        self.bytes += nbytes
        self.seconds += seconds
        self.by_strategy[strategy] += 1
        self.max_workers = max(self.max_workers, workers)
        self._recent.append((seconds * 1e3, files, workers))

    def snapshot(self) -> dict[str, Any]:
        """The figures as plain data (``agentls.metrics``, section ``cache.io``)."""
        ordered = sorted(ms for ms, _files, _workers in self._recent)
        load_ms: dict[str, Any] = {"count": len(ordered), "window": self._recent.maxlen}
        for key, fraction in (("p50", 0.5), ("p99", 0.99)):
            load_ms[key] = round(_percentile(ordered, fraction), 3) if ordered else None
        load_ms["max"] = round(ordered[-1], 3) if ordered else None
        last = self._recent[-1] if self._recent else None
        return {
            "loads": self.loads,
            "files": self.files,
            "files_loaded": self.files_loaded,
            "bytes": self.bytes,
            "load_s": round(self.seconds, 6),
            "mb_per_s": round(self.bytes / 1e6 / self.seconds, 1) if self.seconds else None,
            "by_strategy": dict(self.by_strategy),
            "max_workers": self.max_workers,
            "last": (
                {"ms": round(last[0], 3), "files": last[1], "workers": last[2]} if last else None
            ),
            "load_ms": load_ms,
        }


class Metrics:
    """Run counters and a latency window; a snapshot on demand."""

    def __init__(self, *, latency_window: int = LATENCY_WINDOW) -> None:
        """Start counting from zero, now."""
        self._started = time.monotonic()
        self._total = 0
        self._by_status: Counter[str] = Counter()
        self._durations: deque[float] = deque(maxlen=max(1, latency_window))
        """Milliseconds of the most recent runs that started (queued cancels are excluded)."""
        self._process = psutil.Process()

    def run_finished(self, record: RunRecord) -> None:
        """Count one finished run; its duration joins the window if it ever ran."""
        self._total += 1
        self._by_status[record.status] += 1
        if record.duration_ms > 0:
            self._durations.append(record.duration_ms)

    def snapshot(self, **sections: Mapping[str, Any]) -> dict[str, Any]:
        """The server's figures now, plus the caller's sections under their own names.

        Raises:
            ValueError: A section would replace one of ours (``memory``, ``runs``).
        """
        clash = _RESERVED.intersection(sections)
        if clash:
            raise ValueError(f"metrics sections may not be named {sorted(clash)}")
        ordered = sorted(self._durations)
        latency: dict[str, Any] = {"count": len(ordered), "window": self._durations.maxlen}
        for key, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            latency[key] = round(_percentile(ordered, fraction), 3) if ordered else None
        latency["max"] = round(ordered[-1], 3) if ordered else None
        result: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self._started, 3),
            "memory": self._memory(),
            "runs": {
                "total": self._total,
                "by_status": dict(self._by_status),
                "latency_ms": latency,
            },
        }
        for name, section in sections.items():
            result[name] = dict(section)
        return result

    def _memory(self) -> dict[str, Any]:
        process = self._process
        with process.oneshot():
            info = process.memory_info()
            cpu = process.cpu_times()
            threads = process.num_threads()
        figures: dict[str, Any] = {
            "rss_bytes": info.rss,
            "threads": threads,
            "children": len(process.children(recursive=True)),
            "cpu_user_s": round(cpu.user, 3),
            "cpu_system_s": round(cpu.system, 3),
        }
        peak = _peak_rss(info)
        if peak is not None:
            # The kernel updates its high-water mark lazily; the peak is never below "now".
            figures["peak_rss_bytes"] = max(peak, info.rss)
        return figures


def _peak_rss(info: Any) -> int | None:
    """The process's peak resident memory, where the platform tells it."""
    peak = getattr(info, "peak_wset", None)  # Windows
    if isinstance(peak, int):
        return peak
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS: bytes; Linux: KiB
