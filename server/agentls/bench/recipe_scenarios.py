"""A recipe's fan-out through a real server: one ``for_each`` step over 200 files, 16 at a time.

What a recipe adds to its runs is scheduling: planning the units, holding them to
``max_parallel``, recording each and then the parent. So each round times one run of the step's
agent alone (the same agent, one file attached, on the same fake provider whose answers take a
fixed time), then the whole recipe, and compares the recipe's wall time with the ideal:
``ceil(files / max_parallel)`` waves of one run each. Where the difference went is read from the
step records (``timeline``: the lead-in, the handoff from one step to the next, the tail, how
busy the 16 slots were) and from the server's CPU time per step against per run alone, which a
loaded machine disturbs much less than wall time. Meanwhile ``agentls.status`` is sent one at a
time and its latency kept; the server's RSS is read before and after each recipe.

Everything the recipe did is checked before any figure is kept (``check_recipe``): the answer
lists every file once, every step succeeded, history holds one record per step with ``parent``
set to the recipe's id plus the recipe's own record (201 for 200 files), the provider never saw
more than ``max_parallel`` answers at once, and history stayed within the bound the scenario
configures (small enough that the second round's records push the first round's out).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from agentls.bench.fake_provider import FakeProvider
from agentls.bench.plan import BenchError, Plan
from agentls.bench.rpc import ServerProcess
from agentls.bench.server_scenarios import server_env
from agentls.bench.stats import ScenarioResult, percentile, summarise
from agentls.bench.trees import make_tree, real_dir, write_agent

MAX_PARALLEL = 16
"""The fan-out step's ``max_parallel`` (the engine's ``max_concurrent_runs`` is set to match)."""

CHUNKS = 5
INTERVAL = 0.015
"""Each answer streams ``CHUNKS`` deltas ``INTERVAL`` s apart: about 75 ms per run, fixed by the
provider, so a recipe's ideal time is known from one run's."""

FILE_BYTES = 2_000
"""Each fanned-out file (attached to its run, so it is read and scanned like any context)."""

IDLE_PROBES = 200
"""``agentls.status`` requests timed before each recipe, with nothing running."""

PROBE_PAUSE = 0.002
"""Seconds between two ``agentls.status`` requests during a recipe (one is in flight at a time)."""

RECIPE_TIMEOUT = 600.0
"""Seconds the bench waits for a recipe's answer (a 200-file recipe takes about 1.3 s)."""

EDITOR = {"window": {"workDoneProgress": True}}
"""The client supports work-done progress, as editors do: the recipe reports ``$/progress`` at
every step's start and end, and each step's run sends its notifications."""

RECIPE = "review-all"
AGENT = "review"
GLOB = "src/**/*.py"


def _ms(seconds: float) -> float:
    return seconds * 1e3


def history_bound(files: int) -> int:
    """``limits.history_max_entries`` for the scenario: one recipe's records and a half.

    Small enough that the second round's records push the first round's out (so the bound is
    exercised, not just read back), large enough that one recipe's records all fit.
    """
    return (files + 1) * 3 // 2


def make_workspace(work: Path, provider: FakeProvider, files: int) -> tuple[Path, list[Path]]:
    """The fan-out's files, the agent, the recipe and a configuration on the fake provider.

    A folder per size, so a ``--work-dir`` shared by quick and default runs never leaves extra
    files for the glob to match.
    """
    folder = real_dir(work / f"recipe-{files}")
    paths = make_tree(folder, files, FILE_BYTES)
    (folder / "agentls.toml").write_text(
        f"""default_backend = "fake"
[backends.fake]
kind = "openai"
base_url = "{provider.base_url}"
model = "fake-model"
[limits]
max_concurrent_runs = {MAX_PARALLEL}
max_fan_out = {max(files, 200)}
history_max_entries = {history_bound(files)}
""",
        encoding="utf-8",
    )
    write_agent(folder, AGENT, "Review the attached file. {{task}}", f"name: {AGENT}")
    write_agent(
        folder,
        RECIPE,
        "Review every source file, one run per file.",
        f"""
        name: {RECIPE}
        description: One review run per source file
        steps:
          - id: review
            agent: {AGENT}
            for_each: "{GLOB}"
            max_parallel: {MAX_PARALLEL}
            task: "Review {{{{item}}}}"
        """,
    )
    return folder, paths


def check_recipe(
    answer: Mapping[str, Any], history: Sequence[Mapping[str, Any]], items: Sequence[str]
) -> list[Mapping[str, Any]]:
    """Raise unless the recipe ran each item once and history holds all of it; the step records.

    ``answer`` is ``agentls.run``'s result for the recipe; ``history`` is
    ``agentls.history.list``'s runs (any order, other runs mixed in); ``items`` the files the
    glob must have matched, as the workspace shows them.

    Raises:
        BenchError: a step missing, doubled, failed or unrecorded; the parent record missing.
    """
    recipe_id = answer.get("id")
    if answer.get("status") != "succeeded" or not recipe_id:
        raise BenchError(f"the recipe did not succeed: {answer.get('error')!r}")
    steps = answer.get("steps") or []
    got = sorted(str(s.get("item")) for s in steps)
    if got != sorted(items):
        missing = sorted(set(items) - set(got))[:3]
        raise BenchError(f"the recipe ran {len(got)} steps for {len(items)} files: {missing}")
    bad = [s for s in steps if s.get("status") != "succeeded"]
    if bad:
        raise BenchError(f"{len(bad)} steps did not succeed: {bad[0]}")
    run_ids = {str(s.get("run_id")) for s in steps}
    if len(run_ids) != len(steps):
        raise BenchError("two steps of the recipe share a run id")
    children = [r for r in history if r.get("parent") == recipe_id]
    parents = [r for r in history if r.get("id") == recipe_id]
    if len(parents) != 1 or len(parents[0].get("steps") or []) != len(items):
        raise BenchError(f"history does not hold the recipe's record with its {len(items)} steps")
    if {str(r.get("id")) for r in children} != run_ids or len(children) != len(steps):
        raise BenchError(
            f"history holds {len(children)} step records for the recipe's {len(steps)} steps"
        )
    failed = [r for r in children if r.get("status") != "succeeded"]
    if failed:
        raise BenchError(f"{len(failed)} step records are not succeeded: {failed[0]}")
    return children


def server_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the server's live threads, in seconds.

    One run alone costs a few milliseconds of CPU, below psutil's 10 ms clock tick, so the
    scheduler's own nanosecond counter (``/proc/<pid>/task/*/schedstat``) is summed where Linux
    has it; elsewhere psutil's user + system time. Threads that ended are not counted; the
    server's worker threads stay alive between runs, so differences over a phase hold.
    """
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def timeline(
    children: Sequence[Mapping[str, Any]], sent: float, received: float, parallel: int
) -> tuple[float, float, float]:
    """Where the recipe's time went around its steps' runs, in milliseconds.

    From the step records' ``started_at`` (when the run was handed to the engine, after its
    context was built) and ``duration_ms`` (from its engine slot to its record):

    - lead-in: the request sent -> the first step handed to the engine (the glob, planning);
    - tail: the last step's record -> the answer received (the parent record, its answer);
    - handoff, median: a step's record -> the next step handed to the engine. With a FIFO limit
      of ``parallel``, the ``parallel + j``-th step to start waits for the ``j``-th to end, so
      each handoff is one pair of sorted starts and ends: the slot's idle time, which holds
      recording the run, waking the next unit and building that run's context.

    ``sent`` and ``received`` are the client's ``time.time()``; the server runs on the same clock.
    """
    starts = sorted(float(r["started_at"]) for r in children)
    ends = sorted(float(r["started_at"]) + float(r["duration_ms"]) / 1e3 for r in children)
    gaps = [starts[parallel + j] - ends[j] for j in range(len(starts) - parallel)]
    handoff = percentile(gaps, 0.5) if gaps else 0.0
    return _ms(starts[0] - sent), _ms(received - ends[-1]), _ms(handoff)


async def _timed_status(server: ServerProcess) -> float:
    started = time.perf_counter()
    status = await server.command("agentls.status")
    took = _ms(time.perf_counter() - started)
    if status["index"]["state"] != "ready":
        raise BenchError(f"unexpected agentls.status answer: {status!r}")
    return took


async def _one_run(server: ServerProcess, folder: Path, item: str) -> float:
    """Milliseconds of one ``agentls.run`` of the step's agent, as a step runs it."""
    started = time.perf_counter()
    record = await server.command(
        "agentls.run", {"agent": AGENT, "task": f"Review {item}", "files": [str(folder / item)]}
    )
    took = _ms(time.perf_counter() - started)
    if record.get("status") != "succeeded" or f"token{CHUNKS - 1}" not in record.get("output", ""):
        raise BenchError(f"a run of {AGENT} did not succeed: {record.get('error')!r}")
    return took


CANCEL_ROUNDS = 3
"""Recipes cancelled while their first ``max_parallel`` steps stream (each on a fresh recipe)."""


async def _cancel_rounds(work: Path, files: int) -> list[float]:
    """Milliseconds from ``agentls.runs.cancel`` of a running recipe to its answer, once every
    step has ended (``agentls.status`` lists no run), against a provider whose answers would
    last a minute: the issue's "every running and queued step within 1 s"."""
    provider = FakeProvider(chunks=1200, interval=0.05)
    provider.start()
    took: list[float] = []
    try:
        folder, _ = make_workspace(work / "cancel", provider, files)
        server = await ServerProcess.spawn(server_env(work / "cancel"))
        try:
            await server.initialize(folder, {"trusted": True}, capabilities=EDITOR)
            await server.wait_indexed()
            for n in range(CANCEL_ROUNDS):
                recipe = asyncio.ensure_future(
                    server.command("agentls.run", {"agent": RECIPE, "task": f"c{n}"}, 120)
                )
                deadline = time.monotonic() + 60
                while True:
                    runs = (await server.command("agentls.status"))["runs"]
                    steps = [r for r in runs if r.get("kind") != "recipe"]
                    if len([r for r in steps if r["status"] == "running"]) >= MAX_PARALLEL:
                        break
                    if time.monotonic() > deadline:
                        raise BenchError("the recipe's first steps never all started")
                    await asyncio.sleep(0.02)
                [recipe_id] = [r["id"] for r in runs if r.get("kind") == "recipe"]
                started = time.perf_counter()
                cancelled = await server.command("agentls.runs.cancel", {"id": recipe_id})
                answer = await recipe
                while (await server.command("agentls.status"))["runs"]:  # noqa: ASYNC110 (polling the server)
                    await asyncio.sleep(0.005)
                took.append(_ms(time.perf_counter() - started))
                statuses = {s["status"] for s in answer["steps"]}
                if (
                    not cancelled["cancelled"]
                    or answer["status"] != "cancelled"
                    or statuses != {"cancelled"}
                ):
                    raise BenchError(
                        f"the recipe was not cancelled: {answer['status']}, {statuses}"
                    )
        finally:
            await server.close()
    finally:
        provider.stop()
    return took


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def _check_history_bounds(stats: Mapping[str, Any], listed: int) -> None:
    """Raise when history holds more runs than its configured bound (memory or disk)."""
    bound = int(stats["max_entries"])
    if max(int(stats["entries"]), int(stats["disk_entries"]), listed) > bound:
        raise BenchError(
            f"history holds {stats['entries']} runs in memory, {stats['disk_entries']} on disk "
            f"and lists {listed}: more than its bound of {bound}"
        )


class _Rounds:
    """Each round's measurements, by figure."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)
        self.peaks: list[int] = []
        self.history: dict[str, Any] = {}
        self.probes = 0

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.values[key].append(value)


async def _round(
    server: ServerProcess,
    provider: FakeProvider,
    plan: Plan,
    folder: Path,
    items: Sequence[str],
    n: int,
    out: _Rounds,
) -> None:
    """One run alone (several times), idle probes, then the recipe with probes; all checked."""
    files = len(items)
    cpu = server_cpu_seconds(server.pid)
    one = [await _one_run(server, folder, items[i % files]) for i in range(plan.recipe_single_runs)]
    cpu_one = (server_cpu_seconds(server.pid) - cpu) / len(one)
    cpu = server_cpu_seconds(server.pid)
    idle = [await _timed_status(server) for _ in range(IDLE_PROBES)]
    cpu_probe = (server_cpu_seconds(server.pid) - cpu) / len(idle)
    provider.reset_peak()
    cpu = server_cpu_seconds(server.pid)
    sent = time.time()
    started = time.perf_counter()
    recipe = asyncio.ensure_future(
        server.command("agentls.run", {"agent": RECIPE, "task": f"round {n}"}, RECIPE_TIMEOUT)
    )
    busy: list[float] = []
    while not recipe.done():
        busy.append(await _timed_status(server))
        await asyncio.sleep(PROBE_PAUSE)
    answer = await recipe
    took = time.perf_counter() - started
    received = time.time()
    cpu_recipe = server_cpu_seconds(server.pid) - cpu - len(busy) * cpu_probe
    out.probes += len(busy)
    out.peaks.append(provider.active_peak)
    if provider.active_peak > MAX_PARALLEL:
        raise BenchError(
            f"{provider.active_peak} answers streamed at once, more than max_parallel "
            f"({MAX_PARALLEL})"
        )
    listed = await server.command("agentls.history.list", {"limit": 10_000})
    children = check_recipe(answer, listed["runs"], items)
    metrics = await server.command("agentls.metrics")
    out.history = metrics["history"]
    _check_history_bounds(out.history, len(listed["runs"]))
    stalls = metrics["loop"]["stalls"]
    lead, tail, handoff = timeline(children, sent, received, MAX_PARALLEL)
    one_ms = percentile(one, 0.5)
    durations = [float(r["duration_ms"]) for r in children]
    out.add(
        one=one_ms,
        wall=_ms(took),
        ratio=_ms(took) / (math.ceil(files / MAX_PARALLEL) * one_ms),
        ratio_even=_ms(took) / (files / MAX_PARALLEL * one_ms),
        step=percentile(durations, 0.5),
        busy=100 * sum(durations) / (MAX_PARALLEL * _ms(took)),
        lead=lead,
        tail=tail,
        handoff=handoff,
        cpu_one=_ms(cpu_one),
        cpu_step=_ms(cpu_recipe / files),
        cpu_ratio=cpu_recipe / files / cpu_one,
        loop_share=100 * cpu_recipe / took,
        idle_p99=percentile(idle, 0.99),
        p50=percentile(busy, 0.5),
        p99=percentile(busy, 0.99),
        stall=max((s["ms"] for s in stalls if s["ago_ms"] <= took * 1000), default=0.0),
        rss=_rss_mb(server.pid),
    )


async def scenario_recipe(plan: Plan, work: Path) -> ScenarioResult:
    """One ``for_each`` recipe over ``plan.recipe_files`` files against one run alone."""
    result = ScenarioResult("recipe")
    files = plan.recipe_files
    provider = FakeProvider(chunks=CHUNKS, interval=INTERVAL)
    provider.start()
    out = _Rounds()
    try:
        folder, paths = make_workspace(work, provider, files)
        items = [p.relative_to(folder).as_posix() for p in paths]
        server = await ServerProcess.spawn(server_env(work))
        try:
            await server.initialize(folder, {"trusted": True}, capabilities=EDITOR)
            await server.wait_indexed()
            rss_start = _rss_mb(server.pid)
            for item in items[:2]:  # warm up: the backend's HTTP client and connection, the cache
                await _one_run(server, folder, item)
            rss_before = _rss_mb(server.pid)
            for n in range(plan.recipe_rounds):
                await _round(server, provider, plan, folder, items, n, out)
        finally:
            await server.close()
    finally:
        provider.stop()
    result.info.update(
        files=files,
        max_parallel=MAX_PARALLEL,
        provider_peak_concurrent=out.peaks,
        records_checked=files + 1,
        status_probes=out.probes,
        notifications=dict(server.notifications),
        history=out.history,
        rss_mb={
            "initialized": round(rss_start, 1),
            "before_recipe": round(rss_before, 1),
            "after_each_recipe": [round(m, 1) for m in out.values["rss"]],
        },
    )
    _figures(result, out.values, rss_before, files)
    result.figures.append(
        summarise(
            "cancel -> every step ended",
            "ms",
            await _cancel_rounds(work, files),
            target=("<=", 1000),
            note=f"{MAX_PARALLEL} steps streaming, {files - MAX_PARALLEL} waiting; "
            "until the answer and an empty agentls.status",
        )
    )
    return result


def _figures(
    result: ScenarioResult, v: Mapping[str, list[float]], rss_before: float, files: int
) -> None:
    waves = math.ceil(files / MAX_PARALLEL)
    add = result.figures.append
    add(
        summarise(
            "one run alone",
            "ms",
            v["one"],
            note=f"median of each round's runs; the provider's answer lasts "
            f"{CHUNKS * INTERVAL * 1e3:.0f} ms",
        )
    )
    add(
        summarise(
            "recipe, wall time",
            "ms",
            v["wall"],
            note=f"{files} files, max_parallel {MAX_PARALLEL}: {waves} waves",
        )
    )
    add(
        summarise(
            "recipe / ideal",
            "x",
            v["ratio"],
            note=f"ideal: {waves} waves x one run alone, side by side in each round",
        )
    )
    add(
        summarise(
            f"recipe / ({files}/{MAX_PARALLEL} x one run)",
            "x",
            v["ratio_even"],
            note="against the fractional ideal",
        )
    )
    add(summarise("a step's run in the recipe", "ms", v["step"], note="median duration_ms"))
    add(
        summarise(
            "slots busy",
            "%",
            v["busy"],
            note=f"sum of the steps' durations / ({MAX_PARALLEL} x wall time)",
        )
    )
    add(summarise("lead-in: request -> first step", "ms", v["lead"]))
    add(
        summarise(
            "handoff: a step's end -> the next step",
            "ms",
            v["handoff"],
            note="median; recording, waking the next unit, building its context",
        )
    )
    add(summarise("tail: last step -> answer", "ms", v["tail"]))
    add(summarise("server CPU per run alone", "ms", v["cpu_one"]))
    add(
        summarise(
            "server CPU per step in the recipe",
            "ms",
            v["cpu_step"],
            note="the status probes' CPU taken out",
        )
    )
    add(summarise("CPU per step / per run alone", "x", v["cpu_ratio"], note="side by side"))
    add(
        summarise(
            "server CPU during the recipe",
            "% of a core",
            v["loop_share"],
            note="every thread; the event loop is one of them",
        )
    )
    add(summarise("agentls.status p99, idle", "ms", v["idle_p99"]))
    add(summarise("agentls.status p50 during the recipe", "ms", v["p50"]))
    add(
        summarise(
            "agentls.status p99 during the recipe",
            "ms",
            v["p99"],
            target=("<=", 20),
            note=f"one at a time, {PROBE_PAUSE * 1e3:.0f} ms apart",
        )
    )
    add(
        summarise(
            "longest event-loop stall during the recipe",
            "ms",
            v["stall"],
            note="the server's loop heartbeat; 0 = none over 50 ms",
        )
    )
    add(summarise("RSS before the first recipe", "MB", [rss_before]))
    add(summarise("RSS after each recipe", "MB", v["rss"]))
    add(
        summarise(
            "RSS growth, first recipe -> last",
            "MB",
            [v["rss"][-1] - v["rss"][0]],
            note="plateau ~ 0",
        )
    )
