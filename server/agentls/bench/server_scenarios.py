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


BARE_PYGLS = (
    "-c",
    "from pygls.lsp.server import LanguageServer\nLanguageServer('bare', '0').start_io()\n",
)
"""A stock pygls server with no features: the floor agentls' start-up is compared with."""


async def _time_initialize(env: Mapping[str, str], folder: Path, argv: tuple[str, ...]) -> float:
    """Spawn a server, send ``initialize``; milliseconds until the answer (then close it)."""
    server = await ServerProcess.spawn(env, argv=argv)
    try:
        await server.initialize(folder)
        return _ms(time.perf_counter() - server.started)
    finally:
        await server.close()


async def scenario_startup(plan: Plan, work: Path) -> ScenarioResult:
    """Spawn -> ``initialize`` answered, side by side with bare pygls; RSS; ``agentls --help``.

    Each round spawns agentls and a bare pygls server (alternating which goes first) with the
    same client, so the ratio compares two measurements taken moments apart.
    """
    result = ScenarioResult("startup")
    folder = work / "empty"
    folder.mkdir(parents=True, exist_ok=True)
    env = server_env(work)
    init: list[float] = []
    bare: list[float] = []
    ratio: list[float] = []
    rss: list[float] = []
    helps: list[float] = []
    for i in range(plan.startup_runs):
        order = [False, True] if i % 2 else [True, False]
        for ours in order:
            if ours:
                server = await ServerProcess.spawn(env)
                try:
                    await server.initialize(folder)
                    init.append(_ms(time.perf_counter() - server.started))
                    rss.append(psutil.Process(server.pid).memory_info().rss / 1e6)
                finally:
                    await server.close()
            else:
                bare.append(await _time_initialize(env, folder, BARE_PYGLS))
        ratio.append(init[-1] / bare[-1])
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
        summarise("bare pygls: spawn -> initialize answered", "ms", bare, note="same client")
    )
    result.figures.append(
        summarise(
            "agentls / bare pygls",
            "x",
            ratio,
            target=("<=", 1.1),
            note="side by side in each round",
        )
    )
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
    plan: Plan, work: Path, folder: Path, request: dict[str, Any], paths: list[Path]
) -> dict[str, list[float]]:
    """The same preview without the protocol: what the service and the builder take alone.

    The builder is timed twice: on an unchanged tree (the last assembly is revalidated file by
    file and reused) and with one file rewritten before each build (a full assembly).
    """
    settings = Settings(
        default_backend="none",
        backends={"none": BackendConfig(name="none", kind="command", argv=("true",))},
        data_dir=work / "data-in-process",
        trusted=True,  # the bench's own folder: its agent's budgets stand (run_limits)
    )
    service = AgentService(settings, [folder], watch=False)
    out: dict[str, list[float]] = {"service": [], "build": [], "build_changed": [], "encode": []}
    reps = max(3, plan.preview_warm_reps)
    try:
        await service.start()
        await service.index.wait_ready(timeout=60)
        args = parse_run(request)
        agent = service.registry.get("bench")
        answer = await service.preview(args, NoBuffers())
        _check_preview(answer, 1000)
        for _ in range(reps):
            started = time.perf_counter()
            answer = await service.preview(args, NoBuffers())
            out["service"].append(_ms(time.perf_counter() - started))
            started = time.perf_counter()
            orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": answer})
            out["encode"].append(_ms(time.perf_counter() - started))

        async def build() -> None:
            await service.builder.build(
                agent,
                ContextRequest(task="look"),
                NoBuffers(),
                max_files=1000,
                max_context_tokens=10_000_000,
            )

        await build()
        for _ in range(reps):
            started = time.perf_counter()
            await build()
            out["build"].append(_ms(time.perf_counter() - started))
        for i in range(reps):
            touch(paths[i % len(paths)])
            started = time.perf_counter()
            await build()
            out["build_changed"].append(_ms(time.perf_counter() - started))
    finally:
        await service.shutdown()
    return out


def touch(path: Path) -> None:
    """Rewrite a file with the same bytes: a new mtime, so every cached copy of it is stale."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def bare_transport_ms(
    env: Mapping[str, str], work: Path, result: bytes, reps: int
) -> list[float]:
    """Milliseconds for the same client to get ``result`` from a peer that only sends it.

    The peer (``agentls.bench.bare_transport``) answers with prebuilt bytes, so this is the
    floor of moving that answer: the pipe, the client's reader and its JSON decoding.
    """
    payload = work / "bare-result.json"
    payload.write_bytes(result)
    peer = await ServerProcess.spawn(env, argv=("-m", "agentls.bench.bare_transport", str(payload)))
    times: list[float] = []
    try:
        got = await peer.request("bench/answer")  # also warms the peer's page cache
        if orjson.dumps(got) != result:
            raise BenchError("the bare transport did not send the answer back unchanged")
        for _ in range(reps):
            started = time.perf_counter()
            await peer.request("bench/answer")
            times.append(_ms(time.perf_counter() - started))
    finally:
        await peer.close()
    return times


PACK_REQUEST = {"agent": "pack", "task": "pack"}
"""The preview ``pack_server`` answers: every ``*.py`` file of the tree."""


async def pack_server(work: Path, tree: Path) -> ServerProcess:
    """A real server over ``tree`` plus a folder of its own that holds the ``pack`` agent.

    The agent and its configuration sit in a second workspace folder, so the packed tree is the
    very tree files-to-prompt packs, with nothing of the bench's in it.
    """
    agents = real_dir(work / "pack-agents")
    (agents / "agentls.toml").write_text(
        'default_backend = "none"\n[backends.none]\nkind = "command"\nargv = ["true"]\n',
        encoding="utf-8",
    )
    write_agent(
        agents,
        "pack",
        "Pack {{workspace}}.",
        """
        name: pack
        context: ["**/*.py"]
        max_files: 100000
        max_context_tokens: 1000000000
        """,
    )
    server = await ServerProcess.spawn(server_env(work))
    try:
        # the bench's own folders: trusted, so the agent's budgets stand (run_limits)
        await server.initialize(tree, {"trusted": True}, more_folders=[agents])
        await server.wait_indexed()
    except BaseException:
        await server.close()
        raise
    return server


def _check_preview(answer: Mapping[str, Any], files: int) -> None:
    manifest = answer.get("manifest") or []
    included = [
        m
        for m in manifest
        if isinstance(m, dict) and m["status"] == "included" and m["source"] != "agent"
    ]
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
    bare: list[float] = []
    ratio: list[float] = []
    size = 0
    for _ in range(plan.preview_rounds):
        server = await ServerProcess.spawn(env)
        try:
            await server.initialize(folder, {"trusted": True})  # its agent's budgets stand
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
        floor = await bare_transport_ms(env, work, orjson.dumps(answer), plan.preview_warm_reps)
        bare.append(percentile(floor, 0.5))
        ratio.append(warm[-1] / bare[-1])
    result.info["response_mb"] = round(size / 1e6, 2)
    local = await _preview_in_process(plan, work, folder, request, paths)
    result.figures.append(
        summarise(
            "context assembly in the service (builder, warm)",
            "ms",
            local["build"],
            target=("<=", 5),
            note="ContextBuilder.build, 1,000 files, 10 MB, each revalidated",
        )
    )
    result.figures.append(
        summarise(
            "the same, one file changed before each build",
            "ms",
            local["build_changed"],
            note="a full assembly: one file read again",
        )
    )
    result.figures.append(
        summarise(
            "AgentService.preview in-process (warm)",
            "ms",
            local["service"],
            note="+ prompt text and manifest",
        )
    )
    result.figures.append(summarise("orjson encoding of that answer", "ms", local["encode"]))
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
    result.figures.append(
        summarise(
            "bare transport of the same bytes",
            "ms",
            bare,
            note="a peer that only writes the prebuilt answer; same client, same decode",
        )
    )
    result.figures.append(
        summarise(
            "repeated preview / bare transport",
            "x",
            ratio,
            target=("<=", 2.0),
            note="side by side in each round",
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
    profile = figures["profile"]
    first, second = profile["first"], profile["second"]
    half = profile["traced_runs"] // 2
    result.info["profile"] = profile
    result.figures.append(
        summarise(
            f"traced by tracemalloc after {half:,} more runs",
            "MB",
            [first["traced_bytes"] / 1e6],
            note="agentls.memory.profile started after the RSS samples; top sites in info",
        )
    )
    result.figures.append(
        summarise(
            f"traced growth over the next {profile['traced_runs'] - half:,} runs",
            "KB",
            [(second["traced_bytes"] - first["traced_bytes"]) / 1e3],
            note="plateau ~ 0: the second snapshot's difference, in info",
        )
    )
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
    stall: list[float] = []
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
            took = time.perf_counter() - started
            wall.append(_ms(took))
            stall.append(
                _longest_stall(
                    await server.send(
                        "workspace/executeCommand",
                        {"command": "agentls.metrics", "arguments": [{}]},
                    ),
                    took,
                )
            )
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
    result.figures.append(
        summarise(
            "longest event-loop stall during runs",
            "ms",
            stall,
            note="the server's loop heartbeat (agentls.metrics loop); 0 = none over 50 ms",
        )
    )
    return result


def _longest_stall(metrics: Mapping[str, Any], seconds: float) -> float:
    """The longest loop stall the server saw in the last ``seconds`` (0 if none over 50 ms)."""
    stalls = metrics["loop"]["stalls"]
    recent = [s["ms"] for s in stalls if s["ago_ms"] <= seconds * 1000]
    return max(recent, default=0.0)


async def _timed_trivial(server: ServerProcess) -> float:
    started = time.perf_counter()
    await _trivial(server)
    return _ms(time.perf_counter() - started)
