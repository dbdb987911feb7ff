"""``agentls bench``: measure agentls on this machine against its targets (docs/performance.md).

Owns the command line of the bench and the order scenarios run in. Each scenario measures one
thing several times and reports the median with min-max; ratios come from measurements taken side
by side in the same round. Scenarios run one at a time so they do not disturb each other; the
generated trees live in a work folder (a temporary one unless ``--work-dir`` keeps them between
runs). ``--quick`` is the CI size (about 20 s); the default takes a few minutes, most of it the
100,000-run memory scenario.

Nothing here is imported by the server: ``agentls bench`` loads it on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil

from agentls import __version__
from agentls.bench import (
    local_scenarios,
    recipe_scenarios,
    registry_scenarios,
    server_scenarios,
)
from agentls.bench.plan import DEFAULT, QUICK, BenchError, Plan
from agentls.bench.stats import ScenarioResult

__all__ = ["SCENARIOS", "main", "run_bench"]

logger = logging.getLogger(__name__)

Scenario = Callable[[Plan, Path], Awaitable[ScenarioResult]]

SCENARIOS: dict[str, Scenario] = {
    "startup": server_scenarios.scenario_startup,
    "roundtrip": server_scenarios.scenario_roundtrip,
    "code_actions": server_scenarios.scenario_code_actions,
    "load": local_scenarios.scenario_load,
    "preview": server_scenarios.scenario_preview,
    "pack": local_scenarios.scenario_pack,
    "secrets": local_scenarios.scenario_secrets,
    "invalidate": local_scenarios.scenario_invalidate,
    "hit_rate": local_scenarios.scenario_hit_rate,
    "tools": local_scenarios.scenario_tools,
    "memory": server_scenarios.scenario_memory,
    "streaming": server_scenarios.scenario_streaming,
    "registry": registry_scenarios.scenario_registry,
    "recipe": recipe_scenarios.scenario_recipe,
}
"""Every scenario, in the order they run."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentls bench",
        description="Measure agentls on this machine: startup, round trips, loading, context "
        "assembly, packing vs files-to-prompt, invalidation, hit rate, memory, streaming runs, "
        "a recipe's fan-out.",
    )
    parser.add_argument("--quick", action="store_true", help="the CI size: about 20 seconds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        help="keep generated trees here between runs (default: a temporary folder)",
    )
    return parser


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "agentls": __version__,
    }


async def run_bench(
    names: Sequence[str], plan: Plan, work: Path, progress: Callable[[str], None]
) -> dict[str, ScenarioResult]:
    """Run scenarios one after the other; a failing one is reported, the others still run."""
    results: dict[str, ScenarioResult] = {}
    for name in names:
        progress(f"{name}...")
        started = time.perf_counter()
        try:
            result = await SCENARIOS[name](plan, work)
        except BenchError as e:
            result = ScenarioResult(name, error=str(e))
        except Exception as e:
            logger.exception("scenario %s failed", name)
            result = ScenarioResult(name, error=f"{type(e).__name__}: {e}")
        result.seconds = time.perf_counter() - started
        results[name] = result
    return results


def _table(results: dict[str, ScenarioResult]) -> str:
    """The human form: one line per figure, grouped by scenario."""
    rows = [("scenario", "figure", "median (min-max)", "unit", "target", "")]
    for name, result in results.items():
        if result.error or result.skipped:
            rows.append((name, "FAILED (below)" if result.error else "skipped", "", "", "", ""))
            continue
        for f in result.figures:
            verdict = "" if f.met is None else ("ok" if f.met else "MISSED")
            rows.append((name, f.name, f.cell(), f.unit, f.target or "", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for name, result in results.items():
        if result.error:
            lines.append(f"{name} failed: {result.error}")
        elif result.skipped:
            lines.append(f"{name} skipped: {result.skipped}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point of ``agentls bench``.

    Returns:
        0 when every scenario ran (missed targets are reported, not failures), 1 when one
        failed, 2 for a bad option.
    """
    parser = _parser()
    if argv[:1] == ["--"]:  # ``agentls bench -- --quick``: the separator is not ours
        argv = argv[1:]
    args = parser.parse_args(argv)
    unknown = [n for n in args.scenario if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    names = [n for n in SCENARIOS if not args.scenario or n in args.scenario]
    plan = QUICK if args.quick else DEFAULT
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def progress(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentls-bench-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run_bench(names, plan, work, progress))
    report: dict[str, Any] = {
        "machine": machine(),
        "plan": "quick" if plan.quick else "default",
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": {name: r.to_dict() for name, r in results.items()},
    }
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        m = report["machine"]
        sys.stdout.write(
            f"agentls {m['agentls']} bench ({report['plan']}), {m['cpus']} CPUs {m['cpu']}, "
            f"{m['memory_gb']} GB, {m['system']}, Python {m['python']}: {report['seconds']} s\n"
            f"{_table(results)}\n"
        )
    return 1 if any(r.error for r in results.values()) else 0
