"""Metrics: run counters, latency percentiles, and the process figures psutil reports."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from agentls.execution.records import RunRecord
from agentls.metrics import IoStats, Metrics


def finished(status: str, ms: float, i: int = 0) -> RunRecord:
    return RunRecord(
        id=f"r{i}",
        agent="a",
        task="t",
        status=status,  # type: ignore[arg-type]
        output="",
        started_at=0.0,
        duration_ms=ms,
    )


def test_snapshot_has_memory_runs_and_caller_sections() -> None:
    m = Metrics()
    snap = m.snapshot(cache={"entries": 3}, history={"entries": 1, "degraded": None})
    memory = snap["memory"]
    assert memory["rss_bytes"] == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)
    assert memory["peak_rss_bytes"] >= memory["rss_bytes"] > 10 * 1024 * 1024
    assert memory["threads"] >= 1 and isinstance(memory["children"], int)
    assert memory["cpu_user_s"] >= 0 and memory["cpu_system_s"] >= 0
    assert snap["runs"] == {
        "total": 0,
        "by_status": {},
        "latency_ms": {
            "count": 0,
            "window": 1024,
            "p50": None,
            "p90": None,
            "p99": None,
            "max": None,
        },
    }
    assert snap["cache"] == {"entries": 3}
    assert snap["history"] == {"entries": 1, "degraded": None}
    assert snap["uptime_s"] >= 0


def test_children_are_counted() -> None:
    metrics = Metrics()
    before = metrics.snapshot()["memory"]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        after = metrics.snapshot()["memory"]
        assert after["children"] == before["children"] + 1
    finally:
        child.kill()
        child.wait()


def test_runs_by_status_and_latency_percentiles() -> None:
    m = Metrics()
    for i in range(1, 101):  # 1..100 ms
        m.run_finished(finished("succeeded" if i % 10 else "failed", float(i), i))
    m.run_finished(finished("cancelled", 0.0, 999))  # cancelled while queued: never ran
    runs = m.snapshot()["runs"]
    assert runs["total"] == 101
    assert runs["by_status"] == {"succeeded": 90, "failed": 10, "cancelled": 1}
    latency = runs["latency_ms"]
    assert latency["count"] == 100
    assert (latency["p50"], latency["p90"], latency["p99"], latency["max"]) == (50, 90, 99, 100)


def test_latency_window_is_bounded() -> None:
    m = Metrics(latency_window=50)
    for i in range(1000):
        m.run_finished(finished("succeeded", float(i), i))
    latency = m.snapshot()["runs"]["latency_ms"]
    assert latency["count"] == 50 and latency["window"] == 50
    assert latency["max"] == 999 and latency["p50"] == 974  # only the most recent 50 runs


def test_sections_may_not_replace_our_own() -> None:
    with pytest.raises(ValueError, match="memory"):
        Metrics().snapshot(memory={"fake": 1})


def test_latency_figures_come_from_a_bounded_window() -> None:
    # A snapshot's cost is bounded by the window, not by how many runs the server has seen.
    m = Metrics(latency_window=100)
    for i in range(2000):
        m.run_finished(finished("succeeded", float(i), i))
    latency = m.snapshot()["runs"]["latency_ms"]
    assert latency["count"] == 100 and latency["window"] == 100
    assert latency["max"] == 1999.0 and latency["p50"] >= 1900.0
    assert m.snapshot()["runs"]["total"] == 2000


def test_io_figures_are_totals_and_a_bounded_window() -> None:
    io = IoStats(window=8)
    assert io.snapshot()["load_ms"]["p50"] is None and io.snapshot()["last"] is None
    for i in range(100):
        io.record(
            files=10,
            loaded=9,
            nbytes=1000,
            seconds=(i + 1) / 1000,
            strategy="sliced" if i % 2 else "sequential",
            workers=4 if i % 2 else 1,
        )
    snap = io.snapshot()
    assert (snap["loads"], snap["files"], snap["files_loaded"], snap["bytes"]) == (
        100,
        1000,
        900,
        100_000,
    )
    assert snap["by_strategy"] == {"sliced": 50, "sequential": 50}
    assert snap["max_workers"] == 4
    assert snap["load_ms"]["count"] == 8  # only the window is kept
    assert snap["load_ms"]["p50"] == 96.0 and snap["load_ms"]["max"] == 100.0
    assert snap["last"] == {"ms": 100.0, "files": 10, "workers": 4}
    assert snap["mb_per_s"] == round(0.1 / snap["load_s"], 1)
