"""Scenarios measured inside the bench process: loader, packing, invalidation, hit rate, secrets.

These drive the same service objects the server composes (``WorkspaceIndex``, ``FileCache``,
``load_files``, ``ContextBuilder``, ``Watcher``) on real files, without the JSON-RPC layer in the
way, so each figure is about the part it names. The server-level figures are in
``server_scenarios`` (packing also goes through a real server, end to end, beside the peer).
Every scenario checks what it measured (files read, prompts current) and raises ``BenchError``
when the result is wrong: a fast wrong answer is not a result.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from agentls.agents.definition import AgentDefinition
from agentls.bench.plan import BenchError, Plan
from agentls.bench.rpc import ServerProcess
from agentls.bench.scan_baseline import per_literal_spans
from agentls.bench.server_scenarios import (
    PACK_REQUEST,
    bare_transport_ms,
    pack_server,
    server_env,
    touch,
)
from agentls.bench.stats import ScenarioResult, summarise
from agentls.bench.trees import (
    CAN_DROP,
    drop_page_cache,
    make_tree,
    real_dir,
    warm_page_cache,
)
from agentls.context.builder import ContextBuilder, ContextRequest, ContextResult
from agentls.context.secrets import KINDS, SecretScanner
from agentls.service import NoBuffers
from agentls.workspace.cache import FileCache
from agentls.workspace.index import WorkspaceIndex
from agentls.workspace.loader import CachedFile, Strategy, load_files
from agentls.workspace.roots import WorkspaceRoots
from agentls.workspace.watcher import Watcher

MAX_FILE = 1024 * 1024
SERVER_WORKERS = 4
"""The slices ``FileCache`` (and so the server) uses for a cold load."""


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _fresh_dir(path: Path) -> Path:
    """An empty directory (removed first if it exists), as a realpath."""
    if path.exists():
        shutil.rmtree(path)
    return real_dir(path)


async def _timed_load(paths: list[Path], strategy: Strategy, workers: int, *, cold: bool) -> float:
    """Milliseconds to load ``paths`` one way; checks every file was read."""
    if cold:
        drop_page_cache(paths)
    started = time.perf_counter()
    got = await load_files(paths, max_file_bytes=MAX_FILE, workers=workers, strategy=strategy)
    elapsed = time.perf_counter() - started
    bad = [p for p, v in got.items() if not isinstance(v, CachedFile)]
    if bad or len(got) != len(paths):
        raise BenchError(f"load read {len(got) - len(bad)} of {len(paths)} files")
    return _ms(elapsed)


async def _background_warm(paths: list[Path]) -> tuple[float, float]:
    """``FileCache.warm`` of a cold tree while a 1 ms ticker runs on the same loop.

    Returns:
        Milliseconds the warm-up took, and the longest the ticker waited beyond its 1 ms (how
        long a request arriving during the load could have been held up).
    """
    drop_page_cache(paths)
    cache = FileCache(max_bytes=1 << 30, workers=SERVER_WORKERS)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last - 0.001)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    loaded = await cache.warm(paths, max_file_bytes=MAX_FILE, max_bytes=1 << 30)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    if loaded != len(paths):
        raise BenchError(f"warm-up loaded {loaded} of {len(paths)} files")
    return _ms(elapsed), _ms(max(gaps, default=0.0))


async def scenario_load(plan: Plan, work: Path) -> ScenarioResult:
    """Initial load of generated trees, cold and warm, sequential vs sliced vs the auto choice."""
    result = ScenarioResult("load")
    methods: list[tuple[str, Strategy, int]] = [
        ("sequential", "sequential", 1),
        (f"sliced x{SERVER_WORKERS}", "sliced", SERVER_WORKERS),
        ("sliced x8", "sliced", 8),
        ("auto (server)", "auto", SERVER_WORKERS),
    ]
    for files, size in plan.load_trees:
        paths = make_tree(work / f"tree-{files}x{size}", files, size)
        label = f"{files:,} x {size // 1000} KB"
        temps = ["warm"] + (["cold"] if CAN_DROP else [])
        runs: dict[tuple[str, str], list[float]] = {(t, m[0]): [] for t in temps for m in methods}
        ratios: list[float] = []
        for _round in range(plan.load_rounds):
            for temp in temps:
                if temp == "warm":
                    warm_page_cache(paths)
                for name, strategy, workers in methods:
                    ms = await _timed_load(paths, strategy, workers, cold=temp == "cold")
                    runs[(temp, name)].append(ms)
            if CAN_DROP:
                seq = runs[("cold", "sequential")][-1]
                ratios.append(seq / runs[("cold", f"sliced x{SERVER_WORKERS}")][-1])
        for (temp, name), values in runs.items():
            target = None
            if files == 1000 and size == 10_000 and temp == "cold" and name == "auto (server)":
                target = ("<=", 100.0)
            result.figures.append(summarise(f"{label} {temp}, {name}", "ms", values, target=target))
        if CAN_DROP and files >= 1000:
            warmed = [await _background_warm(paths) for _ in range(plan.load_rounds)]
            result.figures.append(
                summarise(
                    f"{label} cold, background warm-up (secrets scanned)",
                    "ms",
                    [w[0] for w in warmed],
                    note="FileCache.warm: batches of 256 in worker threads",
                )
            )
            result.figures.append(
                summarise(
                    f"{label} longest event-loop stall during that warm-up",
                    "ms",
                    [w[1] for w in warmed],
                    note="a 1 ms ticker on the same loop",
                )
            )
        if ratios:
            result.figures.append(
                summarise(
                    f"{label} cold: sequential / sliced x{SERVER_WORKERS}",
                    "x",
                    ratios,
                    target=(">=", 1.4) if files == 1000 else None,
                    note="same round, side by side",
                )
            )
    if not CAN_DROP:
        result.info["cold"] = "skipped: posix_fadvise is not available here"
    return result


def _builder(
    folder: Path, *, max_bytes: int = 512 << 20, scan_secrets: bool = True
) -> tuple[ContextBuilder, FileCache]:
    """A fresh index, cache and builder over one folder (what the server composes)."""
    roots = WorkspaceRoots([folder])
    index = WorkspaceIndex(roots, max_file_bytes=MAX_FILE)
    cache = FileCache(max_bytes=max_bytes, workers=SERVER_WORKERS, scan_secrets=scan_secrets)
    builder = ContextBuilder(
        roots, index, cache, max_file_bytes=MAX_FILE, scan_secrets=scan_secrets
    )
    return builder, cache


def _pack_agent(globs: tuple[str, ...] = ("**/*",)) -> AgentDefinition:
    return AgentDefinition(
        name="pack",
        source=Path("/bench/.agents/pack.md"),
        body="Pack {{workspace}}.",
        context=globs,
        include=(),
    )


async def _pack(builder: ContextBuilder, agent: AgentDefinition) -> ContextResult:
    return await builder.build(
        agent, ContextRequest(task="pack"), NoBuffers(), max_files=10**6, max_context_tokens=10**9
    )


def stdlib_copy(work: Path) -> Path:
    """A copy of the running interpreter's standard library sources (``*.py``).

    ``site-packages`` and the ``test`` package are left out (the first is not the standard
    library, the second is half of it and not what anyone packs). Both tools then pack the same
    tree, and nothing of the bench's own (``.agents``) sits in it.
    """
    dest = work / "stdlib"
    marker = work / "stdlib.complete"
    if marker.is_file():
        return Path(os.path.realpath(dest))
    src = Path(sysconfig.get_paths()["stdlib"])
    if dest.exists():
        shutil.rmtree(dest)
    marker.unlink(missing_ok=True)
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        if rel.parts[0] in ("site-packages", "test", "dist-packages") or "__pycache__" in rel.parts:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    marker.touch()
    return Path(os.path.realpath(dest))


def _files_to_prompt() -> list[str] | None:
    """How to run files-to-prompt here, or None when it is not installed."""
    exe = shutil.which("files-to-prompt") or shutil.which(
        "files-to-prompt", path=os.path.dirname(sys.executable)
    )
    return [exe] if exe else None


@dataclass
class _PackRuns:
    """What the pack scenario measured, one value per round in each list (milliseconds)."""

    warm: list[float] = field(default_factory=list)
    warm_changed: list[float] = field(default_factory=list)
    lsp: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    cold_unscanned: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)


async def scenario_pack(plan: Plan, work: Path) -> ScenarioResult:
    """Pack the standard library: ours warm and cold, in-process and through a real server, vs
    files-to-prompt (a process), side by side in each round."""
    result = ScenarioResult("pack")
    tree = stdlib_copy(work)
    paths = sorted(p for p in tree.rglob("*.py"))
    total = sum(p.stat().st_size for p in paths)
    result.info.update(tree=str(tree), files=len(paths), mb=round(total / 1e6, 2))
    ftp = _files_to_prompt()
    agent = _pack_agent()
    warm_builder, _cache = _builder(tree)
    first = await _pack(warm_builder, agent)
    included = sum(1 for m in first.manifest if m.status == "included")
    if included != len(paths):
        raise BenchError(f"packed {included} of {len(paths)} files")
    result.info["prompt_mb"] = round(len(first.user.encode()) / 1e6, 2)
    runs = _PackRuns()
    warm_ratio: list[float] = []
    lsp_ratio: list[float] = []
    cold_ratio: list[float] = []
    server = await pack_server(work, tree)
    try:
        answer = await server.command("agentls.context.preview", PACK_REQUEST)  # loads the tree
        included = sum(1 for m in answer["manifest"] if m["status"] == "included")
        if included != len(paths):
            raise BenchError(f"the server packed {included} of {len(paths)} files")
        for _round in range(plan.pack_rounds):
            if ftp is not None:
                started = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    *ftp, str(tree), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
                packed_by_peer, _ = await proc.communicate()
                runs.peer.append(_ms(time.perf_counter() - started))
                if proc.returncode != 0:
                    raise BenchError(f"files-to-prompt failed with exit status {proc.returncode}")
                result.info["files_to_prompt_mb"] = round(len(packed_by_peer) / 1e6, 2)
            await _pack_round(plan, tree, paths, agent, warm_builder, server, runs)
            if ftp is not None:
                warm_ratio.append(runs.peer[-1] / runs.warm[-1])
                lsp_ratio.append(runs.peer[-1] / runs.lsp[-1])
                cold_ratio.append(runs.peer[-1] / runs.cold[-1])
        answer = await server.command("agentls.context.preview", PACK_REQUEST)
    finally:
        await server.close()
    answer_bytes = orjson.dumps(answer)
    bare = await bare_transport_ms(server_env(work), work, answer_bytes, plan.pack_warm_reps)
    result.info["lsp_answer_mb"] = round(len(answer_bytes) / 1e6, 2)
    result.figures.append(summarise("agentls warm (cache hot)", "ms", runs.warm))
    result.figures.append(
        summarise(
            "agentls warm, one file changed before each pack",
            "ms",
            runs.warm_changed,
            note="a full assembly: that file read again, every other one revalidated",
        )
    )
    result.figures.append(
        summarise(
            "agentls warm through LSP (preview, real server)",
            "ms",
            runs.lsp,
            note="the whole prompt and manifest, read and decoded by the client",
        )
    )
    result.figures.append(
        summarise(
            "bare transport of that answer",
            "ms",
            bare,
            note="a peer that only writes the same bytes; same client",
        )
    )
    result.figures.append(
        summarise("agentls cold (new index, page cache dropped)", "ms", runs.cold)
    )
    result.figures.append(
        summarise(
            "agentls cold, secrets not scanned",
            "ms",
            runs.cold_unscanned,
            note="what the in-file secrets scan costs when cold (the server always scans)",
        )
    )
    if ftp is None:
        result.info["files_to_prompt"] = "not installed: pip install files-to-prompt"
        return result
    result.figures.append(summarise("files-to-prompt (process)", "ms", runs.peer))
    result.figures.append(
        summarise("files-to-prompt / agentls warm", "x", warm_ratio, target=(">=", 20.0))
    )
    result.figures.append(
        summarise("files-to-prompt / agentls warm through LSP", "x", lsp_ratio, target=(">=", 10.0))
    )
    result.figures.append(
        summarise("files-to-prompt / agentls cold", "x", cold_ratio, target=(">=", 1.0))
    )
    return result


async def _pack_round(
    plan: Plan,
    tree: Path,
    paths: list[Path],
    agent: AgentDefinition,
    warm_builder: ContextBuilder,
    server: ServerProcess,
    runs: _PackRuns,
) -> None:
    """One round of agentls' ways of packing: cold twice, warm, through LSP, one file changed."""

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    for scan, out in ((True, runs.cold), (False, runs.cold_unscanned)):
        drop_page_cache(paths)
        builder, _ = _builder(tree, scan_secrets=scan)
        started = time.perf_counter()
        packed = await _pack(builder, agent)
        len(packed.prompt_bytes)  # the packed text, as a writer would take it
        out.append(_ms(time.perf_counter() - started))
    reps = []
    for _ in range(plan.pack_warm_reps):
        started = time.perf_counter()
        packed = await _pack(warm_builder, agent)
        len(packed.prompt_bytes)
        reps.append(_ms(time.perf_counter() - started))
    runs.warm.append(median(reps))
    reps = []
    for _ in range(plan.pack_warm_reps):
        started = time.perf_counter()
        answer = await server.command("agentls.context.preview", PACK_REQUEST)
        reps.append(_ms(time.perf_counter() - started))
    if len(answer["manifest"]) < len(paths):
        raise BenchError("the server's preview lost files")
    runs.lsp.append(median(reps))
    # Last: the server's watcher sees these changes too, and its next previews re-read them.
    reps = []
    for i in range(plan.pack_warm_reps):
        touch(paths[(len(runs.warm) * 7 + i) % len(paths)])
        started = time.perf_counter()
        packed = await _pack(warm_builder, agent)
        len(packed.prompt_bytes)
        reps.append(_ms(time.perf_counter() - started))
    runs.warm_changed.append(median(reps))


async def scenario_secrets(plan: Plan, work: Path) -> ScenarioResult:
    """What scanning included text for secrets costs, cold (first sight) and warm (memo).

    Each round also scans the same files with the first scanner's strategy (one ``bytes.find``
    pass per literal, ``bench/scan_baseline.py``), side by side, and checks that both find the
    same secrets. CPU time of the bench process is used, so other load on the machine skews
    the figures less than wall time would.
    """
    result = ScenarioResult("secrets")
    tree = stdlib_copy(work)
    datas = [p.read_bytes() for p in sorted(tree.rglob("*.py"))]
    mb = sum(map(len, datas)) / 1e6
    cold: list[float] = []
    warm: list[float] = []
    per_mb: list[float] = []
    baseline_per_mb: list[float] = []
    speedup: list[float] = []
    found = 0
    for _round in range(plan.secrets_rounds):
        started = time.process_time()
        expected = [per_literal_spans(d) for d in datas]
        baseline_per_mb.append(_ms(time.process_time() - started) / mb)
        scanner = SecretScanner()
        started = time.process_time()
        redactions = [scanner.redact(d) for d in datas]
        cold.append(_ms(time.process_time() - started))
        per_mb.append(cold[-1] / mb)
        speedup.append(baseline_per_mb[-1] / per_mb[-1])
        found = sum(len(r.findings) for r in redactions)
        if found != sum(map(len, expected)):
            raise BenchError("the anchored scan and the per-literal scan disagree")
        started = time.process_time()
        for d in datas:
            scanner.redact(d)
        warm.append(_ms(time.process_time() - started))
    result.info.update(files=len(datas), mb=round(mb, 2), findings=found, detectors=len(KINDS))
    result.figures.append(summarise(f"scan {len(datas)} files cold (CPU)", "ms", cold))
    result.figures.append(summarise("scan cost per MB cold (CPU)", "ms/MB", per_mb))
    result.figures.append(
        summarise(
            "per MB, one find pass per literal (first strategy)",
            "ms/MB",
            baseline_per_mb,
            note="bench/scan_baseline.py: the same rules, scanned the way the first version did",
        )
    )
    result.figures.append(
        summarise("first strategy / current, side by side", "x", speedup, target=(">=", 5.0))
    )
    result.figures.append(summarise("same files again (memo by xxh3, CPU)", "ms", warm))
    return result


async def _invalidation_latency(
    folder: Path, paths: list[Path], writes: int, idle_seconds: float
) -> tuple[list[float], float]:
    """Write files one at a time; milliseconds until the watcher's batch names each.

    Returns:
        The latencies, and the watcher's idle CPU (% of one core) measured before the writes.
    """
    seen: dict[Path, float] = {}
    arrived = asyncio.Event()

    def changed(batch: set[Path]) -> None:
        now = time.perf_counter()
        for p in batch:
            seen.setdefault(p, now)
        arrived.set()

    watcher = Watcher([folder], changed)  # the server's settings
    await watcher.start()
    try:
        # The whole process's CPU (the watcher's Rust thread included), at nanosecond resolution.
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.sleep(idle_seconds)
        idle = 100 * (time.process_time() - cpu0) / (time.perf_counter() - t0)
        rng = random.Random(4)  # noqa: S311 (a repeatable workload, not a secret)
        latencies: list[float] = []
        for i in range(writes):
            path = paths[rng.randrange(len(paths))]
            seen.pop(path, None)
            await asyncio.sleep(rng.uniform(0.03, 0.12))
            written = time.perf_counter()
            path.write_bytes(path.read_bytes()[:-1] + b"%d\n" % (i % 10))
            deadline = written + 5.0
            while path not in seen:
                arrived.clear()
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise BenchError(f"no watcher event for {path.name} within 5 s")
                try:
                    await asyncio.wait_for(arrived.wait(), left)
                except TimeoutError:
                    continue
            latencies.append(_ms(seen[path] - written))
        return latencies, idle
    finally:
        await watcher.stop()


async def _storm(folder: Path, changes: int) -> float:
    """A ``git checkout``-sized burst: milliseconds from the last write until all were seen."""
    storm = folder / "storm"
    half = changes // 2
    old = make_tree(storm, half, 200)
    seen: set[Path] = set()
    done = asyncio.Event()
    expected: set[Path] = set()

    def changed(batch: set[Path]) -> None:
        seen.update(batch)
        if expected and expected <= seen:
            done.set()

    watcher = Watcher([storm], changed)
    await watcher.start()
    try:
        new = [p.with_name(p.stem + "_new.py") for p in old]
        expected.update(old, new)
        for p in old:
            p.write_bytes(b"rewritten\n")
        for p in new:
            p.write_bytes(b"created\n")
        last = time.perf_counter()
        try:
            await asyncio.wait_for(done.wait(), 30.0)
        except TimeoutError:
            raise BenchError(f"storm: {len(expected & seen)} of {changes} changes seen") from None
        return _ms(time.perf_counter() - last)
    finally:
        await watcher.stop()
        shutil.rmtree(storm, ignore_errors=True)


async def _revalidation_cost(paths: list[Path], reps: int) -> tuple[list[float], list[float]]:
    """Milliseconds for a fully warm ``read_many`` with the stat check and trusting the watcher."""
    checked = FileCache(max_bytes=512 << 20)
    trusted = FileCache(max_bytes=512 << 20, revalidate=False)
    old = time.time_ns() - 10**11
    for p in paths:  # settled files, so the first reads are kept
        os.utime(p, ns=(old, old))
    out: tuple[list[float], list[float]] = ([], [])
    for i, cache in enumerate((checked, trusted)):
        await cache.read_many(paths, max_file_bytes=MAX_FILE)
        for _ in range(reps):
            started = time.perf_counter()
            await cache.read_many(paths, max_file_bytes=MAX_FILE)
            out[i].append(_ms(time.perf_counter() - started))
        if cache.stats()["hits"] < reps * len(paths):
            raise BenchError("warm reads were not served from memory")
    return out


async def _stale_reads(folder: Path, writes: int) -> dict[str, int]:
    """Write then read at once, ``writes`` times: how many reads were stale in each mode."""
    path = folder / "edited.py"
    caches = {
        "revalidate": FileCache(max_bytes=1 << 20),
        "trust_watcher": FileCache(max_bytes=1 << 20, revalidate=False),
    }

    def changed(batch: set[Path]) -> None:
        for cache in caches.values():
            cache.invalidate(batch)

    watcher = Watcher([folder], changed)
    await watcher.start()
    stale = dict.fromkeys(caches, 0)
    old = time.time_ns() - 10**11
    try:
        for i in range(writes):
            data = b"version %d\n" % i
            path.write_bytes(data)
            os.utime(path, ns=(old + i * 10**9, old + i * 10**9))  # settled: trusted once read
            for name, cache in caches.items():
                got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
                stale[name] += not isinstance(got, CachedFile) or got.data != data
            await asyncio.sleep(0.005)
    finally:
        await watcher.stop()
    return stale


async def scenario_invalidate(plan: Plan, work: Path) -> ScenarioResult:
    """External write -> invalidated; watcher idle CPU; a storm; revalidation vs watcher trust."""
    result = ScenarioResult("invalidate")
    files, size = plan.watch_tree
    folder = real_dir(work / f"watch-{files}")
    paths = make_tree(folder, files, size)
    latencies, idle = await _invalidation_latency(
        folder, paths, plan.watch_writes, plan.watch_idle_s
    )
    result.figures.append(
        summarise(
            f"write -> invalidated ({files:,}-file tree)",
            "ms",
            latencies,
            target=("<=", 100.0),
            note="median of single writes; min-max over writes",
        )
    )
    result.figures.append(
        summarise(
            "watcher idle CPU (whole bench process)",
            "% core",
            [idle],
            note=f"{plan.watch_idle_s:g} s idle, the server's watcher settings",
        )
    )
    storms = [await _storm(folder, plan.storm_changes) for _ in range(plan.storm_rounds)]
    result.figures.append(
        summarise(f"storm of {plan.storm_changes:,} changes: last write -> all seen", "ms", storms)
    )
    sample = paths[:1000]
    checked, trusted = await _revalidation_cost(sample, plan.revalidate_reps)
    result.figures.append(summarise("1,000 warm hits, (mtime, size) checked", "ms", checked))
    result.figures.append(summarise("1,000 warm hits, watcher trusted", "ms", trusted))
    stale = await _stale_reads(folder, plan.stale_writes)
    result.info["stale_reads"] = {**stale, "writes": plan.stale_writes}
    if stale["revalidate"]:
        raise BenchError(f"{stale['revalidate']} stale reads with revalidation")
    result.figures.append(
        summarise("stale reads, revalidating (write then read)", "count", [stale["revalidate"]])
    )
    result.figures.append(
        summarise("stale reads, trusting the watcher", "count", [stale["trust_watcher"]])
    )
    return result


async def scenario_hit_rate(plan: Plan, work: Path) -> ScenarioResult:
    """Repeated runs over 1,000 files with external edits between them: hits, and zero stale."""
    result = ScenarioResult("hit_rate")
    folder = _fresh_dir(work / "hits")
    paths = make_tree(folder, 1000, 4000)
    builder, cache = _builder(folder)

    def changed(batch: set[Path]) -> None:
        cache.invalidate(batch)

    watcher = Watcher([folder], changed)
    await watcher.start()
    agent = _pack_agent(("src/**/*.py",))
    rng = random.Random(7)  # noqa: S311 (a repeatable workload, not a secret)
    stale = 0
    checked = 0
    try:
        await _pack(builder, agent)  # the first run loads everything
        base = cache.stats()
        for run in range(plan.hit_runs):
            edited = rng.sample(paths, plan.hit_edits)
            for p in edited:  # external edits, not waited for
                p.write_bytes(p.read_bytes() + b"# run %d\n" % run)
            # Someone edits, then starts a run: a pause, though far shorter than a person's.
            # It outlasts the racy-read window, so an edited file is read once, not twice.
            await asyncio.sleep(plan.hit_pause)
            got = await _pack(builder, agent)
            user = got.user.encode()
            for p in [*edited, *rng.sample(paths, 10)]:
                checked += 1
                stale += p.read_bytes() not in user
    finally:
        await watcher.stop()
    stats = cache.stats()
    hits = stats["hits"] - base["hits"]
    lookups = hits + stats["misses"] - base["misses"]
    result.info.update(
        runs=plan.hit_runs,
        edits_per_run=plan.hit_edits,
        pause_s=plan.hit_pause,
        files_checked=checked,
        best_possible_pct=100 * (1 - plan.hit_edits / len(paths)),
        cache=stats,
    )
    result.figures.append(
        summarise("hit rate over repeated runs", "%", [100 * hits / lookups], target=(">=", 99.0))
    )
    result.figures.append(summarise("stale files in prompts", "count", [stale], target=("<=", 0)))
    if stale:
        raise BenchError(f"{stale} stale files in prompts")
    return result
