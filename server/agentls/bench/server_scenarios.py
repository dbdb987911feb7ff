"""Scenarios measured through a real ``agentls serve`` process, as an editor sees it.

Startup, trivial round trips (sequential and 32 in flight), ``agentls.context.preview`` of 1,000
files cold and warm, memory after many runs (a child process of its own), and a trivial
request's latency while 64 streaming runs go through the server to a local fake provider.
Every answer is checked (right agent, every file included, every run succeeded).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import psutil

from agentls.bench.fake_provider import FakeProvider
from agentls.bench.plan import BenchError, Plan
from agentls.bench.rpc import ServerProcess
from agentls.bench.stats import ScenarioResult, percentile, summarise
from agentls.bench.trees import CAN_DROP, drop_page_cache, make_tree, real_dir, write_agent
from agentls.config import BackendConfig, Settings
from agentls.context.builder import ContextRequest
from agentls.requests import parse_run
from agentls.service import AgentService, NoBuffers

TRIVIAL = ("agentls.runs.cancel", {"id": "bench-no-such-run"})
"""The cheapest command: argument check, one dict lookup, a small answer."""


def _ms(seconds: float) -> float:
    return seconds * 1e3


def server_env(work: Path) -> dict[str, str]:
    """The environment of a server child: isolated user configuration and data folders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLS_")}
    env["XDG_CONFIG_HOME"] = str(work / "config-home")
    env["AGENTLS_DATA_DIR"] = str(work / "data")
    return env


async def _trivial(server: ServerProcess) -> None:
    result = await server.command(*TRIVIAL)
    if result != {"cancelled": False}:
        raise BenchError(f"unexpected answer to the trivial command: {result!r}")


async def scenario_startup(plan: Plan, work: Path) -> ScenarioResult:
    """Spawn -> ``initialize`` answered, its RSS, and ``agentls --help``, round-robin."""
    result = ScenarioResult("startup")
    folder = work / "empty"
    folder.mkdir(parents=True, exist_ok=True)
    env = server_env(work)
    init: list[float] = []
    rss: list[float] = []
    helps: list[float] = []
    for _ in range(plan.startup_runs):
        server = await ServerProcess.spawn(env)
        try:
            await server.initialize(folder)
            init.append(_ms(time.perf_counter() - server.started))
            rss.append(psutil.Process(server.pid).memory_info().rss / 1e6)
        finally:
            await server.close()
        started = time.perf_counter()
        done = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentls",
            "--help",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if await done.wait() != 0:
            raise BenchError("agentls --help failed")
        helps.append(_ms(time.perf_counter() - started))
    result.figures.append(summarise("spawn -> initialize answered", "ms", init, target=("<=", 450)))
    result.figures.append(
        summarise("RSS when initialize is answered", "MB", rss, target=("<=", 60))
    )
    result.figures.append(summarise("agentls --help (process)", "ms", helps))
    return result


async def scenario_roundtrip(plan: Plan, work: Path) -> ScenarioResult:
    """A trivial command: p50/p99 one at a time, then requests/s with 32 in flight."""
    result = ScenarioResult("roundtrip")
    folder = work / "empty"
    folder.mkdir(parents=True, exist_ok=True)
    server = await ServerProcess.spawn(server_env(work))
    p50: list[float] = []
    p99: list[float] = []
    rates: list[float] = []
    try:
        await server.initialize(folder)
        for _ in range(200):  # warm up (the service starts; imports settle)
            await _trivial(server)
        for _ in range(plan.rtt_reps):
            lat: list[float] = []
            for _ in range(plan.rtt_requests):
                started = time.perf_counter()
                await _trivial(server)
                lat.append(_ms(time.perf_counter() - started))
            p50.append(percentile(lat, 0.5))
            p99.append(percentile(lat, 0.99))
            rates.append(await _throughput(server, plan.rtt_inflight_requests, 32))
    finally:
        await server.close()
    note = f"{plan.rtt_requests:,} sequential requests per run"
    result.figures.append(summarise("trivial p50", "ms", p50, target=("<=", 0.2), note=note))
    result.figures.append(summarise("trivial p99", "ms", p99, target=("<=", 1.0), note=note))
    result.figures.append(
        summarise(
            "requests/s, 32 in flight",
            "req/s",
            rates,
            target=(">=", 5000),
            note=f"{plan.rtt_inflight_requests:,} requests per run",
        )
    )
    return result


CODE_ACTION_AGENTS = 200
"""Agents in the code-action scenario (the issue's figure: p99 <= 5 ms with 200 agents)."""


async def scenario_code_actions(plan: Plan, work: Path) -> ScenarioResult:
    """``textDocument/codeAction`` on a source file with 200 agents, answered from memory."""
    result = ScenarioResult("code_actions")
    folder = work / "actions"
    for i in range(CODE_ACTION_AGENTS):
        write_agent(folder, f"agent{i:03}", "Review.", f"description: Agent {i}\nbackend: local")
    (folder / "agentls.toml").write_text(
        'default_backend = "local"\n[backends.local]\nkind = "command"\nargv = ["cat"]\n',
        encoding="utf-8",
    )
    source = folder / "src" / "app.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("def main():\n    return 1\n", encoding="utf-8")
    params = {
        "textDocument": {"uri": source.as_uri()},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 4}},
        "context": {"diagnostics": []},
    }
    server = await ServerProcess.spawn(server_env(work))
    p50: list[float] = []
    p99: list[float] = []
    try:
        await server.initialize(folder)
        await server.wait_indexed()
        for _ in range(50):
            answer = await server.request("textDocument/codeAction", params)
        if len(answer) != CODE_ACTION_AGENTS:
            raise BenchError(f"expected {CODE_ACTION_AGENTS} code actions, got {len(answer)}")
        for _ in range(plan.rtt_reps):
            lat: list[float] = []
            for _ in range(plan.rtt_requests // 4):
                started = time.perf_counter()
                await server.request("textDocument/codeAction", params)
                lat.append(_ms(time.perf_counter() - started))
            p50.append(percentile(lat, 0.5))
            p99.append(percentile(lat, 0.99))
    finally:
        await server.close()
    note = f"{CODE_ACTION_AGENTS} agents, {plan.rtt_requests // 4:,} sequential requests per run"
    result.figures.append(summarise("code actions p50", "ms", p50, note=note))
    result.figures.append(summarise("code actions p99", "ms", p99, target=("<=", 5.0), note=note))
    return result


async def _throughput(server: ServerProcess, total: int, inflight: int) -> float:
    """Requests per second with ``inflight`` requests outstanding at all times."""
    per_worker = total // inflight

    async def worker() -> None:
        for _ in range(per_worker):
            await _trivial(server)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return per_worker * inflight / (time.perf_counter() - started)


def _preview_workspace(work: Path) -> tuple[Path, list[Path]]:
    """1,000 files of 10 KB and an agent that includes all of them."""
    folder = real_dir(work / "preview")
    paths = make_tree(folder, 1000, 10_000)
    # A preview contacts no backend, but an agent without one is reported as invalid.
    (folder / "agentls.toml").write_text(
        'default_backend = "none"\n[backends.none]\nkind = "command"\nargv = ["true"]\n',
        encoding="utf-8",
    )
    write_agent(
        folder,
        "bench",
        "Review {{workspace}}.",
        """
        name: bench
        context: ["src/**/*.py"]
        max_files: 1000
        max_context_tokens: 10000000
        """,
    )
    return folder, paths


async def _preview_in_process(
    plan: Plan, work: Path, folder: Path, request: dict[str, Any]
) -> tuple[list[float], list[float], list[float]]:
    """The same preview without the protocol: what the service and the builder take alone."""
    settings = Settings(
        default_backend="none",
        backends={"none": BackendConfig(name="none", kind="command", argv=("true",))},
        data_dir=work / "data-in-process",
    )
    service = AgentService(settings, [folder], watch=False)
    service_ms: list[float] = []
    build_ms: list[float] = []
    encode_ms: list[float] = []
    try:
        await service.start()
        await service.index.wait_ready(timeout=60)
        args = parse_run(request)
        agent = service.registry.get("bench")
        answer = await service.preview(args, NoBuffers())
        _check_preview(answer, 1000)
        for _ in range(max(3, plan.preview_warm_reps)):
            started = time.perf_counter()
            answer = await service.preview(args, NoBuffers())
            service_ms.append(_ms(time.perf_counter() - started))
            started = time.perf_counter()
            orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": answer})
            encode_ms.append(_ms(time.perf_counter() - started))
            started = time.perf_counter()
            await service.builder.build(
                agent,
                ContextRequest(task="look"),
                NoBuffers(),
                max_files=1000,
                max_context_tokens=10_000_000,
            )
            build_ms.append(_ms(time.perf_counter() - started))
    finally:
        await service.shutdown()
    return service_ms, build_ms, encode_ms


def _check_preview(answer: Mapping[str, Any], files: int) -> None:
    manifest = answer.get("manifest") or []
    included = [m for m in manifest if isinstance(m, dict) and m["status"] == "included"]
    if len(included) != files:
        raise BenchError(f"preview included {len(included)} of {files} files")


async def scenario_preview(plan: Plan, work: Path) -> ScenarioResult:
    """``agentls.context.preview`` of 1,000 files: first (cold) and repeated (warm)."""
    result = ScenarioResult("preview")
    folder, paths = _preview_workspace(work)
    env = server_env(work)
    request = {"agent": "bench", "task": "look"}
    cold: list[float] = []
    warm: list[float] = []
    size = 0
    for _ in range(plan.preview_rounds):
        server = await ServerProcess.spawn(env)
        try:
            await server.initialize(folder)
            await server.wait_indexed()
            drop_page_cache(paths)
            started = time.perf_counter()
            answer = await server.command("agentls.context.preview", request)
            cold.append(_ms(time.perf_counter() - started))
            _check_preview(answer, len(paths))
            size = len(orjson.dumps(answer))
            reps: list[float] = []
            for _ in range(plan.preview_warm_reps):
                started = time.perf_counter()
                answer = await server.command("agentls.context.preview", request)
                reps.append(_ms(time.perf_counter() - started))
            _check_preview(answer, len(paths))
            warm.append(percentile(reps, 0.5))
        finally:
            await server.close()
    result.info["response_mb"] = round(size / 1e6, 2)
    service_ms, build_ms, encode_ms = await _preview_in_process(plan, work, folder, request)
    result.figures.append(
        summarise(
            "context assembly in the service (builder, warm)",
            "ms",
            build_ms,
            target=("<=", 5),
            note="ContextBuilder.build, 1,000 files, 10 MB",
        )
    )
    result.figures.append(
        summarise("AgentService.preview in-process (warm)", "ms", service_ms, note="+ prompt text")
    )
    result.figures.append(summarise("orjson encoding of that answer", "ms", encode_ms))
    cold_label = "first preview (cold: empty cache" + (", page cache dropped)" if CAN_DROP else ")")
    result.figures.append(summarise(cold_label, "ms", cold))
    result.figures.append(
        summarise(
            "repeated preview (warm)",
            "ms",
            warm,
            target=("<=", 15),
            note="median of the repeats in each server; includes the client's JSON decode",
        )
    )
    return result


async def scenario_memory(plan: Plan, work: Path) -> ScenarioResult:
    """RSS of a service after many runs through a fake backend, history capped (a child process)."""
    result = ScenarioResult("memory")
    folder = real_dir(work / "memory-ws")
    make_tree(folder, 20, 2000)
    write_agent(folder, "review", "Review {{task}}.", 'name: review\ncontext: ["src/**/*.py"]')
    data = work / "memory-data"
    if data.exists():
        for p in sorted(data.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentls.bench.memory",
        str(plan.memory_runs),
        str(folder),
        str(data),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise BenchError(f"the memory child failed with exit status {proc.returncode}")
    figures = orjson.loads(out.splitlines()[-1])
    if figures["failed"]:
        raise BenchError(f"{figures['failed']} runs failed in the memory child")
    samples = figures["samples"]
    mb = [rss / 1e6 for _runs, rss in samples]
    half = mb[len(mb) // 2]
    budget = figures["cache_max_bytes"] / 1e6
    result.info.update(
        runs=figures["runs"],
        samples_mb=[[r, round(m, 1)] for (r, _), m in zip(samples, mb, strict=True)],
        history=figures["history"],
        cache_bytes=figures["cache_bytes"],
    )
    result.figures.append(
        summarise(
            f"RSS after {figures['runs']:,} runs",
            "MB",
            [mb[-1]],
            target=("<=", budget + 80),
            note=f"cache budget {budget:.0f} MB (in use: {figures['cache_bytes'] / 1e6:.2f} MB)",
        )
    )
    result.figures.append(
        summarise("RSS growth over the second half", "MB", [mb[-1] - half], note="plateau ~ 0")
    )
    result.figures.append(summarise("RSS before the first run", "MB", [mb[0]]))
    return result


def _streaming_workspace(work: Path, provider: FakeProvider, runs: int) -> Path:
    folder = real_dir(work / "streaming")
    (folder / "agentls.toml").write_text(
        f"""default_backend = "fake"
[backends.fake]
kind = "openai"
base_url = "{provider.base_url}"
model = "fake-model"
[limits]
max_concurrent_runs = {runs}
""",
        encoding="utf-8",
    )
    write_agent(folder, "stream", "Answer {{task}}.", "name: stream")
    return folder


async def scenario_streaming(plan: Plan, work: Path) -> ScenarioResult:
    """A trivial request's latency while 64 runs stream through the server."""
    result = ScenarioResult("streaming")
    provider = FakeProvider(chunks=40, interval=0.025)
    provider.start()
    folder = _streaming_workspace(work, provider, plan.streaming_runs)
    idle_p99: list[float] = []
    busy_p50: list[float] = []
    busy_p99: list[float] = []
    wall: list[float] = []
    server = await ServerProcess.spawn(server_env(work))
    try:
        await server.initialize(folder, {"trusted": True})
        await server.wait_indexed()
        for _ in range(plan.streaming_rounds):
            lat = [await _timed_trivial(server) for _ in range(300)]
            idle_p99.append(percentile(lat, 0.99))
            started = time.perf_counter()
            runs = [
                server.send(
                    "workspace/executeCommand",
                    {"command": "agentls.run", "arguments": [{"agent": "stream", "task": str(i)}]},
                )
                for i in range(plan.streaming_runs)
            ]
            gathered = asyncio.gather(*runs)
            lat = []
            while not gathered.done():
                lat.append(await _timed_trivial(server))
                await asyncio.sleep(0.002)
            records = await gathered
            wall.append(_ms(time.perf_counter() - started))
            bad = [r for r in records if r["status"] != "succeeded" or "token39" not in r["output"]]
            if bad:
                raise BenchError(f"{len(bad)} streaming runs did not succeed: {bad[0]['error']}")
            busy_p50.append(percentile(lat, 0.5))
            busy_p99.append(percentile(lat, 0.99))
    finally:
        await server.close()
        provider.stop()
    result.info.update(
        runs=plan.streaming_runs,
        provider_peak_concurrent=provider.active_peak,
        notifications=server.notifications,
    )
    note = f"{plan.streaming_runs} runs of 40 deltas each, 25 ms apart"
    result.figures.append(summarise("trivial p99, idle", "ms", idle_p99))
    result.figures.append(summarise("trivial p50 during runs", "ms", busy_p50, note=note))
    result.figures.append(
        summarise("trivial p99 during runs", "ms", busy_p99, target=("<=", 20), note=note)
    )
    result.figures.append(summarise(f"{plan.streaming_runs} runs, wall time", "ms", wall))
    return result


async def _timed_trivial(server: ServerProcess) -> float:
    started = time.perf_counter()
    await _trivial(server)
    return _ms(time.perf_counter() - started)
