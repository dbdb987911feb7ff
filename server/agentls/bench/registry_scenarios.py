"""The agent registry at the size of a real collection: 1,000 agent files in category folders.

Three figures: loading the registry in process (walk, read, parse: ``scan_folder``), the first
``agentls.agents.list`` answered after ``initialized`` by a real server (what an editor waits for
before it can show agents), and a warm ``agentls.agents.list``. The files have the shape of a
Claude Code collection: category folders under ``.claude/agents``, front matter with a
description that holds ``': '`` (read by the lenient retry), ``tools``, ``model: sonnet``, and a
body of a few KB. Every answer is checked: every agent listed, valid, on the backend's model.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from agentls.agents.registry import scan_folder
from agentls.bench.plan import BenchError, Plan
from agentls.bench.rpc import ServerProcess
from agentls.bench.server_scenarios import server_env
from agentls.bench.stats import ScenarioResult, summarise
from agentls.bench.trees import real_dir

AGENTS = 1000
CATEGORIES = 20
BACKEND = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "bench-model"}
"""Never contacted: listing needs only its name and model ('sonnet' maps to this model)."""

_BODY = (
    "You are a specialist. When invoked:\n\n"
    + "".join(f"{i}. Read the relevant files and check item {i} carefully.\n" for i in range(1, 40))
    + "\n## Output\n\nA list of findings, most severe first, each with file and line.\n"
) * 2


def make_collection(root: Path, count: int = AGENTS) -> Path:
    """``count`` agent files under ``root/.claude/agents/<category>/``; returns the realpath."""
    folder = real_dir(root)
    for i in range(count):
        category = folder / ".claude" / "agents" / f"category-{i % CATEGORIES:02}"
        category.mkdir(parents=True, exist_ok=True)
        (category / f"agent-{i:04}.md").write_text(
            f"---\nname: agent-{i:04}\n"
            f"description: Use this agent when: the build fails. Triggers on: case {i}\n"
            "tools: Read, Grep, Glob, Bash(npm test:*)\nmodel: sonnet\ncolor: blue\n---\n" + _BODY,
            encoding="utf-8",
        )
    return folder


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _check(listed: object, count: int) -> int:
    """The number of bytes the answer would take; raises when an agent is missing or broken."""
    if not isinstance(listed, dict) or not isinstance(listed.get("agents"), list):
        raise BenchError(f"unexpected agents.list answer: {str(listed)[:200]}")
    agents = listed["agents"]
    if len(agents) != count:
        raise BenchError(f"agents.list gave {len(agents)} agents, expected {count}")
    bad = [a["name"] for a in agents if not a["valid"] or a["model"] != BACKEND["model"]]
    if bad:
        raise BenchError(f"agents not valid or not on the backend's model: {bad[:5]}")
    import orjson

    return len(orjson.dumps(listed))


async def scenario_registry(plan: Plan, work: Path) -> ScenarioResult:
    """Registry load in process; first and warm ``agents.list`` through a real server."""
    result = ScenarioResult("registry")
    folder = make_collection(work / "collection")
    loads: list[float] = []
    cpu: list[float] = []
    for _ in range(plan.registry_rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        scan = scan_folder(folder)
        loads.append(_ms(time.perf_counter() - started))
        cpu.append(_ms(time.process_time() - started_cpu))
        if len(scan.files) != AGENTS:
            raise BenchError(f"the registry found {len(scan.files)} files, expected {AGENTS}")
    firsts: list[float] = []
    firsts_cpu: list[float] = []
    warm: list[float] = []
    warm_cpu: list[float] = []
    size = 0
    options = {"default_backend": "bench", "backends": {"bench": BACKEND}, "trusted": True}
    for _ in range(plan.registry_rounds):
        server = await ServerProcess.spawn(server_env(work))
        try:
            await server.request(
                "initialize",
                {
                    "processId": None,
                    "capabilities": {},
                    "rootUri": folder.as_uri(),
                    "workspaceFolders": [{"uri": folder.as_uri(), "name": folder.name}],
                    "initializationOptions": options,
                },
            )
            child = psutil.Process(server.pid)
            cpu_before = _cpu(child)
            started = time.perf_counter()
            server.notify("initialized", {})
            listed = await server.command("agentls.agents.list")
            firsts.append(_ms(time.perf_counter() - started))
            firsts_cpu.append(_ms(_cpu(child) - cpu_before))
            size = _check(listed, AGENTS)
            await server.wait_indexed()
            cpu_before = _cpu(child)
            for _ in range(plan.registry_list_reps):
                started = time.perf_counter()
                listed = await server.command("agentls.agents.list")
                warm.append(_ms(time.perf_counter() - started))
            warm_cpu.append(_ms(_cpu(child) - cpu_before) / plan.registry_list_reps)
            _check(listed, AGENTS)
        finally:
            await server.close()
    note = f"{AGENTS:,} agent files in {CATEGORIES} category folders"
    result.figures.append(
        summarise("registry load (walk, read, parse)", "ms", loads, target=("<=", 150), note=note)
    )
    result.figures.append(
        summarise("registry load, CPU time", "ms", cpu, note="less sensitive to a busy machine")
    )
    result.figures.append(
        summarise(
            "first agents.list after initialized", "ms", firsts, target=("<=", 300), note=note
        )
    )
    result.figures.append(
        summarise(
            "first agents.list, server CPU time",
            "ms",
            firsts_cpu,
            note="the server's CPU (all threads) until the answer; less sensitive to load",
        )
    )
    result.figures.append(
        summarise(
            "warm agents.list",
            "ms",
            warm,
            target=("<=", 10),
            note=f"{size // 1024} KB answer, {plan.registry_list_reps} requests per round",
        )
    )
    result.figures.append(
        summarise("warm agents.list, server CPU time per request", "ms", warm_cpu)
    )
    result.info["answer_bytes"] = size
    return result


def _cpu(process: psutil.Process) -> float:
    """Seconds of CPU a process has used (user + system, all threads)."""
    times = process.cpu_times()
    return float(times.user + times.system)
