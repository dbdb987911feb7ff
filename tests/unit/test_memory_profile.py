"""The memory profiler over the real ``tracemalloc``: off until started, sites and differences."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from agentls.memory_profile import MemoryProfiler, NotProfiling


class Leaky:
    """Instances kept alive on purpose, so they show up by type."""


def test_nothing_is_traced_until_started() -> None:
    MemoryProfiler()
    assert not tracemalloc.is_tracing()


def test_a_growing_site_is_found_and_stops_growing_once_released() -> None:
    async def scenario() -> None:
        profiler = MemoryProfiler()
        with pytest.raises(NotProfiling):
            await profiler.snapshot(10)
        assert (await profiler.start())["started"] is True
        try:
            kept = [bytearray(10_000) for _ in range(500)]  # the leak: 5 MB at this line
            leaky = [Leaky() for _ in range(20_000)]
            first = await profiler.snapshot(200)
            here = [r for r in first["top"] if r["file"] == __file__]
            assert here and here[0]["size"] >= 5_000_000 and here[0]["count"] >= 500
            grew = [d for d in first["diff"] if d["file"] == __file__ and d["size_diff"] > 0]
            assert grew and grew[0]["size_diff"] >= 5_000_000
            leaks = [t for t in first["types"] if t["type"].endswith(".Leaky")]
            assert leaks and leaks[0]["count"] >= 20_000
            del kept, leaky
            second = await profiler.snapshot(200)
            shrank = [d for d in second["diff"] if d["file"] == __file__]
            assert shrank and shrank[0]["size_diff"] <= -5_000_000
            assert second["traced_bytes"] < first["traced_bytes"]
        finally:
            assert profiler.stop()["stopped"] is True
        assert not tracemalloc.is_tracing()
        with pytest.raises(NotProfiling):
            await profiler.snapshot(10)

    asyncio.run(scenario())
