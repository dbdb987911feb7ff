"""The loop heartbeat sees a step that holds the event loop, and forgets nothing it should keep."""

from __future__ import annotations

import asyncio
import time

from agentls.loop_lag import STALLS_KEPT, LoopLag


async def test_a_blocking_step_is_seen_as_a_stall_with_its_age() -> None:
    lag = LoopLag(interval=0.02)
    lag.start()
    lag.start()  # idempotent
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.4)  # hold the loop, as a synchronous call would
        await asyncio.sleep(0.1)
        snap = lag.snapshot()
    finally:
        lag.stop()
    assert not lag.running
    assert snap["longest_stall_ms"] >= 350
    worst = max(snap["stalls"], key=lambda s: s["ms"])
    assert worst["ms"] >= 350 and 0 <= worst["ago_ms"] < 60_000
    assert snap["beats"] >= 3 and snap["lag_p99_ms"] >= snap["lag_p50_ms"] >= 0


async def test_figures_stay_bounded_and_survive_stop() -> None:
    lag = LoopLag(interval=0.001)
    lag.start()
    try:
        for _ in range(STALLS_KEPT + 10):
            time.sleep(0.06)  # each one a stall
            await asyncio.sleep(0.002)
    finally:
        lag.stop()
    snap = lag.snapshot()
    assert len(snap["stalls"]) == STALLS_KEPT
    ages = [s["ago_ms"] for s in snap["stalls"]]
    assert ages == sorted(ages)  # newest first
    assert snap["longest_stall_ms"] >= 50


def test_a_monitor_never_started_reports_nothing() -> None:
    snap = LoopLag().snapshot()
    assert snap["beats"] == 0 and snap["lag_p50_ms"] is None and snap["stalls"] == []
