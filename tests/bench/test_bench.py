"""``agentls bench``: the quick run completes with every scenario, and its parts are correct.

Timings are never asserted (the machine is shared and noisy); what is asserted is that each
scenario ran, measured what it says (every file read, no stale read, every run succeeded) and
reported figures in the documented shape.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentls.bench import SCENARIOS
from agentls.bench.fake_provider import FakeProvider
from agentls.bench.plan import QUICK, BenchError
from agentls.bench.recipe_scenarios import MAX_PARALLEL, check_recipe, history_bound, timeline
from agentls.bench.rpc import RpcError, ServerProcess
from agentls.bench.server_scenarios import server_env
from agentls.bench.stats import percentile, summarise
from agentls.bench.trees import CAN_DROP, drop_page_cache, file_bytes, make_tree

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``agentls bench --quick --json`` run, shared by the checks below."""
    work = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentls",
            "bench",
            "--",
            "--quick",
            "--json",
            "--work-dir",
            str(work),
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


@pytest.mark.timeout(120)
def test_quick_run_has_every_scenario_with_figures(quick_report: dict[str, Any]) -> None:
    assert quick_report["plan"] == "quick"
    assert set(quick_report["scenarios"]) == set(SCENARIOS)
    for name, scenario in quick_report["scenarios"].items():
        assert scenario["error"] is None, f"{name}: {scenario['error']}"
        assert scenario["figures"], name
        for figure in scenario["figures"]:
            assert figure["runs"] >= 1
            assert figure["min"] <= figure["median"] <= figure["max"], figure
            assert figure["met"] in (None, True, False)
    machine = quick_report["machine"]
    assert machine["cpus"] >= 1 and machine["python"]


@pytest.mark.timeout(120)
def test_quick_run_measured_correct_results(quick_report: dict[str, Any]) -> None:
    scenarios = quick_report["scenarios"]

    def figure(scenario: str, prefix: str) -> dict[str, Any]:
        found = [f for f in scenarios[scenario]["figures"] if f["name"].startswith(prefix)]
        assert found, f"{scenario}: no figure {prefix!r}"
        return dict(found[0])

    assert figure("invalidate", "stale reads, revalidating")["max"] == 0
    assert figure("hit_rate", "stale files in prompts")["max"] == 0
    assert scenarios["invalidate"]["info"]["stale_reads"]["revalidate"] == 0
    memory = scenarios["memory"]["info"]
    assert memory["history"]["entries"] <= memory["history"]["max_entries"]
    assert scenarios["streaming"]["info"]["provider_peak_concurrent"] > 1
    names = {f["name"] for f in scenarios["load"]["figures"]}
    assert "1,000 x 10 KB warm, sequential" in names
    if CAN_DROP:
        assert "1,000 x 10 KB cold: sequential / sliced x4" in names
    pack = scenarios["pack"]["info"]
    assert pack["files"] > 100 and pack["prompt_mb"] > 1
    assert pack["lsp_answer_mb"] > pack["prompt_mb"]  # the whole prompt came through the server
    figure("pack", "agentls warm through LSP")
    figure("pack", "agentls warm, one file changed")
    figure("preview", "repeated preview / bare transport")
    figure("startup", "agentls / bare pygls")
    profile = memory["profile"]
    assert profile["traced_runs"] > 0
    assert profile["second"]["top"] and profile["second"]["types"]
    assert all({"file", "line", "size", "count"} <= set(row) for row in profile["first"]["top"])
    # the registry scenario checked every answer (1,000 valid agents on the backend's model)
    assert scenarios["registry"]["info"]["answer_bytes"] > 500_000
    assert figure("registry", "warm agents.list")["runs"] >= 10


@pytest.mark.timeout(120)
def test_quick_run_checked_every_step_of_the_recipe(quick_report: dict[str, Any]) -> None:
    recipe = quick_report["scenarios"]["recipe"]
    info = recipe["info"]
    # check_recipe passed in each round: every file's step, its record with parent, the recipe's
    assert info["files"] == QUICK.recipe_files and info["records_checked"] == QUICK.recipe_files + 1
    assert len(info["provider_peak_concurrent"]) == QUICK.recipe_rounds
    assert all(1 < peak <= MAX_PARALLEL for peak in info["provider_peak_concurrent"])
    assert info["status_probes"] > 0
    assert info["notifications"]["$/progress"] > 2 * QUICK.recipe_files  # as an editor sees it
    history = info["history"]
    assert history["max_entries"] == history_bound(QUICK.recipe_files)
    assert history["entries"] <= history["max_entries"]
    assert history["disk_entries"] <= history["max_entries"]
    assert len(info["rss_mb"]["after_each_recipe"]) == QUICK.recipe_rounds
    names = {f["name"] for f in recipe["figures"]}
    assert {"recipe / ideal", "agentls.status p99 during the recipe", "slots busy"} <= names


def _step(recipe: str, n: int, status: str = "succeeded") -> dict[str, Any]:
    return {"id": f"run{n}", "parent": recipe, "status": status, "started_at": 100.0 + n}


def test_the_recipe_check_fails_on_a_missing_doubled_or_failed_step() -> None:
    items = ["src/a.py", "src/b.py"]
    answer = {
        "id": "r1",
        "status": "succeeded",
        "steps": [
            {"item": "src/a.py", "run_id": "run0", "status": "succeeded"},
            {"item": "src/b.py", "run_id": "run1", "status": "succeeded"},
        ],
    }
    parent = {"id": "r1", "steps": answer["steps"]}
    history = [parent, _step("r1", 0), _step("r1", 1), _step("other", 2)]
    assert [r["id"] for r in check_recipe(answer, history, items)] == ["run0", "run1"]
    with pytest.raises(BenchError, match="1 step records"):
        check_recipe(answer, [parent, _step("r1", 0)], items)  # a step's record missing
    with pytest.raises(BenchError, match="recipe's record"):
        check_recipe(answer, history[1:], items)  # the parent's record missing
    with pytest.raises(BenchError, match="2 steps for 3 files"):
        check_recipe(answer, history, [*items, "src/c.py"])
    doubled = {**answer, "steps": [answer["steps"][0], {**answer["steps"][1], "run_id": "run0"}]}
    with pytest.raises(BenchError, match="share a run id"):
        check_recipe(doubled, history, items)
    with pytest.raises(BenchError, match="not succeeded"):
        check_recipe(answer, [parent, _step("r1", 0), _step("r1", 1, "failed")], items)
    with pytest.raises(BenchError, match="did not succeed"):
        check_recipe({**answer, "status": "failed"}, history, items)


def test_the_timeline_pairs_each_start_with_the_end_that_freed_its_slot() -> None:
    # two slots; runs of 1 s; each later step starts 0.1 s after the step that freed its slot
    records = [
        {"started_at": 10.0, "duration_ms": 1000.0},
        {"started_at": 10.2, "duration_ms": 1000.0},
        {"started_at": 11.1, "duration_ms": 1000.0},
        {"started_at": 11.3, "duration_ms": 1000.0},
    ]
    lead, tail, handoff = timeline(records, sent=9.99, received=12.35, parallel=2)
    assert (round(lead), round(tail), round(handoff)) == (10, 50, 100)


def test_an_unknown_scenario_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentls.bench", "--scenario", "nope"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"unknown scenario 'nope'" in done.stderr


def test_figures_are_medians_with_their_range_and_judged() -> None:
    f = summarise("x", "ms", [5.0, 1.0, 3.0], target=("<=", 3.0))
    assert (f.median, f.low, f.high, f.runs, f.met) == (3.0, 1.0, 5.0, 3, True)
    assert f.cell() == "3.00 (1.00-5.00)"
    assert summarise("y", "x", [2.0], target=(">=", 2.5)).met is False
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    with pytest.raises(ValueError, match="no measurements"):
        summarise("z", "ms", [])


def test_generated_trees_are_deterministic_and_sized(tmp_path: Path) -> None:
    paths = make_tree(tmp_path / "t", 150, 10_000)
    assert len(paths) == 150 and len({p.parent for p in paths}) == 2
    assert all(p.stat().st_size == 10_000 for p in paths)
    assert paths[7].read_bytes() == file_bytes(7, 10_000)
    again = make_tree(tmp_path / "t", 150, 10_000)
    assert again == paths
    if CAN_DROP:
        assert drop_page_cache(paths) == 150
    assert drop_page_cache([tmp_path / "missing"]) == 0


async def test_the_fake_provider_streams_a_chat_completion() -> None:
    provider = FakeProvider(chunks=3, interval=0.001)
    provider.start()
    try:
        async with httpx.AsyncClient() as client:
            body = {"model": "m", "messages": [], "stream": True}
            async with client.stream(
                "POST", f"{provider.base_url}/chat/completions", json=body
            ) as response:
                assert response.status_code == 200
                text = "".join([chunk async for chunk in response.aiter_text()])
            missing = await client.get(f"{provider.base_url}/models")
            assert missing.status_code == 404
    finally:
        provider.stop()
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:3]]
    assert deltas == ["token0 ", "token1 ", "token2 "]
    assert provider.completed == 1


async def test_the_rpc_client_talks_to_a_real_server(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    server = await ServerProcess.spawn(server_env(tmp_path))
    try:
        init = await server.initialize(Path(os.path.realpath(folder)))
        assert "executeCommandProvider" in init["capabilities"]
        status = await server.wait_indexed()
        assert status["index"]["state"] == "ready"
        assert await server.command("agentls.runs.cancel", {"id": "x"}) == {"cancelled": False}
        with pytest.raises(RpcError) as err:
            await server.command("agentls.runs.cancel", {"nope": 1})
        assert err.value.error["code"] == -32602
        answers = await asyncio.gather(*(server.command("agentls.status") for _ in range(32)))
        assert all(a["index"]["state"] == "ready" for a in answers)
    finally:
        await server.close()
