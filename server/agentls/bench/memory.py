"""Memory after many runs: a child process that pushes runs through the real service.

``python -m agentls.bench.memory RUNS FOLDER DATA_DIR`` builds an ``AgentService`` over FOLDER
(history in DATA_DIR, the default history caps), replaces only the backend with an in-process one
that streams a short answer, runs RUNS runs (8 at a time, as the default concurrency allows) and
prints one JSON line: resident memory sampled every tenth of the way, history and cache figures.
A fresh process is used so the figures are this workload's alone; everything else (context
building, the engine, history in SQLite, metrics) is the code the server runs.

Then it asks the service's memory profiler (``agentls.memory.profile``) where the memory goes:
tracing starts after the last RSS sample (so it does not weigh on the RSS figures), another tenth
of the runs goes through in two halves with a snapshot after each, and the second snapshot's
difference shows what the last twentieth of the runs left behind (a leak would be a site that
keeps growing).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

from agentls.backends.base import Backend, BackendEvent, BackendRequest, TextDelta, Usage
from agentls.config import BackendConfig, Limits, Settings
from agentls.requests import MemoryProfileArgs, parse_run
from agentls.service import AgentService, NoBuffers

CONCURRENCY = 8

PROFILE_TOP = 10
"""Rows of each list the profile part reports."""


class _FakeBackend:
    """Streams a few deltas at once: the runs cost what agentls costs, not what a model costs."""

    name = "fake"

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        """Three deltas and a usage report."""
        for piece in ("Looks ", "good ", f"({len(request.user)} bytes seen)."):
            yield TextDelta(piece)
        yield Usage(prompt_tokens=len(request.user) // 4, completion_tokens=3)

    async def aclose(self) -> None:
        """Nothing to release."""


class _FakeFactory:
    """Hands the one fake backend to every run."""

    def __init__(self) -> None:
        self.backend = _FakeBackend()

    def get(self, config: BackendConfig) -> Backend:
        """The fake, whatever the configuration."""
        return self.backend

    async def aclose(self) -> None:
        """Nothing to release."""


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def run(runs: int, folder: Path, data_dir: Path) -> dict[str, Any]:
    """Push ``runs`` runs through a service and sample memory along the way."""
    limits = Limits()
    settings = Settings(
        default_backend="fake",
        backends={"fake": BackendConfig(name="fake", kind="command", argv=("true",))},
        limits=limits,
        trusted=True,
        data_dir=data_dir,
    )
    service = AgentService(settings, [folder], watch=False)
    service.backends = _FakeFactory()  # type: ignore[assignment]
    await service.start()
    await service.index.wait_ready(timeout=30)
    samples: list[tuple[int, int]] = [(0, _rss())]
    step = max(1, runs // 10)
    failed = 0
    sampled = [0]

    def sample(done: int) -> None:
        """Every tenth of the way (and at the end)."""
        if done // step != sampled[0] // step or done == runs:
            samples.append((done, _rss()))
        sampled[0] = done

    failed += await _runs(service, 0, runs, on_batch=sample)
    # Where it goes: trace another tenth of the runs, in two halves, a snapshot after each.
    traced = max(2 * CONCURRENCY, runs // 10)
    await service.memory_profile(MemoryProfileArgs("start"))
    failed += await _runs(service, runs, traced // 2)
    first = await service.memory_profile(MemoryProfileArgs("snapshot", PROFILE_TOP))
    failed += await _runs(service, runs + traced // 2, traced - traced // 2)
    second = await service.memory_profile(MemoryProfileArgs("snapshot", PROFILE_TOP))
    service.memory.stop()
    out = {
        "runs": runs,
        "failed": failed,
        "samples": samples,
        "history": service.history.stats(),
        "cache_bytes": service.cache.stats()["bytes"],
        "cache_max_bytes": limits.cache_max_bytes,
        "history_max_entries": limits.history_max_entries,
        "history_max_bytes": limits.history_max_bytes,
        "profile": {
            "traced_runs": traced,
            "first": {k: first[k] for k in ("traced_bytes", "tracemalloc_bytes", "top", "types")},
            "second": {k: second[k] for k in ("traced_bytes", "top", "diff", "types")},
        },
    }
    await service.shutdown()
    return out


async def _runs(
    service: AgentService,
    first: int,
    count: int,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Push ``count`` runs through the service, ``CONCURRENCY`` at a time; how many failed."""
    done = 0
    failed = 0
    while done < count:
        batch = min(CONCURRENCY, count - done)
        results = await asyncio.gather(
            *(
                service.run(
                    parse_run({"agent": "review", "task": f"run {first + done + i}"}), NoBuffers()
                )
                for i in range(batch)
            )
        )
        failed += sum(r["status"] != "succeeded" for r in results)
        done += batch
        if on_batch is not None:
            on_batch(first + done)
    return failed


def main(argv: list[str]) -> int:
    """Run and print the figures as one JSON line."""
    runs, folder, data_dir = int(argv[0]), Path(argv[1]), Path(argv[2])
    result = asyncio.run(run(runs, folder, data_dir))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
