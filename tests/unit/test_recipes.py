"""Recipes: the format's checks, and recipes run by the service on real ``command`` children.

The steps' agent is ``agent_commands.py step``: it logs when it ran and what task it was given,
so the tests see the DAG's order, overlapping intervals, filled templates and the fan-out's
parallelism from what really ran. Services get a real history database and are restarted to
show that parent and step records survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.fakes.agent_commands import argv

from agentls.agents.definition import parse_definition
from agentls.agents.registry import AgentRegistry
from agentls.config import Settings, load_settings
from agentls.errors import InvalidArguments
from agentls.execution.records import RunRecord
from agentls.requests import RunArgs
from agentls.service import AgentService, NoBuffers

Start = Callable[[Settings, Path], Awaitable[AgentService]]
"""The ``services`` fixture (tests/unit/conftest.py): starts a service on one folder."""

HANG_BOUND = 30.0
"""Seconds a wait may take before the test calls it a hang."""


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _problems(text: str) -> list[str]:
    result = parse_definition(textwrap.dedent(text).lstrip("\n"), Path("/w/.agents/r.md"))
    return [p.message for p in result.problems if p.severity == "error"]


RECIPE = """
---
name: fix-and-review
description: Plan, implement, then review and check in parallel
steps:
  - id: plan
    agent: planner
  - id: impl
    agent: implementer
    needs: [plan]
    task: "Implement this plan: {{steps.plan.output}}"
  - id: review
    agent: reviewer
    needs: [impl]
  - id: security
    agent: auditor
    needs: impl
---
Notes.
"""


# -- the format ------------------------------------------------------------------------------


def test_a_valid_recipe_parses_to_steps() -> None:
    result = parse_definition(textwrap.dedent(RECIPE).lstrip("\n"), Path("/w/.agents/r.md"))
    recipe = result.definition
    assert recipe is not None and recipe.is_recipe and not result.problems
    assert [(s.id, s.agent, s.needs) for s in recipe.steps] == [
        ("plan", "planner", ()),
        ("impl", "implementer", ("plan",)),
        ("review", "reviewer", ("impl",)),
        ("security", "auditor", ("impl",)),
    ]
    assert recipe.steps[1].task == "Implement this plan: {{steps.plan.output}}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("needs: impl", "needs: [impl, planz]"), "needs 'planz': no step has that id"),
        (("needs: impl", "needs: [impl, review]\n    task: x"), None),
        (("needs: [plan]", "needs: [plan, review]"), "cycle"),
        (("agent: auditor", "agent: auditor\n    bogus: 1"), "unknown step key 'bogus'"),
        (("agent: auditor", "agent: auditor\n    task: '{{item}}'"), "{{item}} is only set"),
        (("needs: [impl]", "needs: [impl]\n    task: '{{steps.security.output}}'"), "not upstream"),
        (("needs: [impl]", "needs: [impl]\n    task: '{{steps.nope.output}}'"), "names no step"),
        (
            ("needs: [impl]", "needs: [impl]\n    task: '{{steps.plan.outputs}}'"),
            "steps.<id>.output",
        ),
        (("id: security", "id: review"), "another step is already called 'review'"),
        (("id: security", "id: 9lives"), "must start with a letter"),
        (("agent: auditor", "agent: auditor\n    for_each: '../up/*'"), "'..' is not allowed"),
        (
            ("agent: auditor", "agent: auditor\n    for_each: '*.py'\n    max_parallel: 0"),
            "max_parallel",
        ),
        (("  - id: plan\n    agent: planner\n", "  - id: plan\n"), "this step has no `agent`"),
    ],
)
def test_recipe_mistakes_are_errors_on_the_file(
    change: tuple[str, str], expected: str | None
) -> None:
    text = textwrap.dedent(RECIPE).lstrip("\n").replace(*change, 1)
    problems = _problems(text)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_step_errors_are_placed_on_the_offending_value() -> None:
    text = textwrap.dedent(RECIPE).lstrip("\n").replace("needs: impl", "needs: [impl, planz]")
    result = parse_definition(text, Path("/w/.agents/r.md"))
    [problem] = [p for p in result.problems if p.severity == "error"]
    assert text.splitlines()[problem.line].strip() == "needs: [impl, planz]"


def test_the_registry_checks_step_agents_and_leaves_recipes_without_a_backend(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ws"
    _write(folder, ".agents/recipe.md", RECIPE)
    for name in ("planner", "implementer", "reviewer"):
        _write(folder, f".agents/{name}.md", "---\ndescription: x\n---\nI am {{agent}}.\n")
    _write(folder, ".agents/other.md", "---\nsteps:\n  - id: a\n    agent: fix-and-review\n---\n")
    reg = AgentRegistry()
    reg.load_folder(folder)
    reg.set_backends(["local"], None)  # no default backend: agents get an error, recipes do not
    by_name = {e.name: e for e in reg.agents()}
    recipe = by_name["fix-and-review"]
    errors = [p.message for p in recipe.problems if p.severity == "error"]
    assert errors == [
        "step 'security': no agent is named 'auditor' (agents: implementer, planner, reviewer)"
    ]
    other = [p.message for p in by_name["other"].problems if p.severity == "error"]
    assert other == [
        "step 'a': 'fix-and-review' is a recipe; a step runs an agent (list its steps here instead)"
    ]
    listed = recipe.to_dict(str)
    assert listed["kind"] == "recipe"
    assert listed["steps"][1] == {
        "id": "impl",
        "agent": "implementer",
        "needs": ["plan"],
        "for_each": None,
    }


# -- running ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    path = tmp_path / "log"
    path.mkdir()
    return path


def _agents(ws: Path, *names: str) -> None:
    for name in names:
        _write(ws, f".agents/{name}.md", "---\ndescription: a step\n---\nI am {{agent}}.\n")


@pytest.fixture
def settings(tmp_path: Path, logdir: Path) -> Callable[[Path], Settings]:
    """Settings whose user file defines the ``step`` backend (slow enough to see overlaps)."""

    def make(ws: Path, delay: float = 0.4, max_concurrent: int = 8) -> Settings:
        user = tmp_path / "user.toml"
        command = ", ".join(json.dumps(a) for a in argv("step", str(logdir), str(delay)))
        user.write_text(
            f'default_backend = "step"\n[backends.step]\nkind = "command"\nargv = [{command}]\n'
            f"[limits]\nmax_concurrent_runs = {max_concurrent}\n",
            encoding="utf-8",
        )
        return load_settings([ws], user_file=user)

    return make


async def _until(predicate: Callable[[], object], what: str) -> None:
    """Poll until ``predicate()`` is true; fail the test after ``HANG_BOUND`` seconds."""
    deadline = time.monotonic() + HANG_BOUND
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {HANG_BOUND:.0f} s"
        await asyncio.sleep(0.05)


def _log(logdir: Path) -> list[dict[str, Any]]:
    path = logdir / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["start"] < b["end"] and b["start"] < a["end"])


class Seen:
    """A recipe observer that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def started(self, recipe_id: str) -> None:
        self.events.append(("started", recipe_id))

    def step(self, recipe_id: str, step: str, agent: str, task: str, item: str | None) -> None:
        self.events.append(("step", step, agent, task, item))

    def progress(self, recipe_id: str, done: int, total: int, running: Any) -> None:
        self.events.append(("progress", done, total, tuple(running)))

    def finished(self, record: RunRecord) -> None:
        self.events.append(("finished", record.status))


async def test_steps_run_in_dag_order_with_independent_steps_overlapping(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    ws = tmp_path / "ws"
    _write(ws, ".agents/recipe.md", RECIPE)
    _agents(ws, "planner", "implementer", "reviewer", "auditor")
    service = await services(settings(ws), ws)
    seen = Seen()
    result = await service.run_recipe(
        RunArgs(agent="fix-and-review", task="fix the bug"),
        NoBuffers(),
        seen,  # type: ignore[arg-type]
    )
    assert result["status"] == "succeeded", result
    ran = {entry["agent"]: entry for entry in _log(logdir)}
    assert set(ran) == {"planner", "implementer", "reviewer", "auditor"}
    assert ran["planner"]["end"] <= ran["implementer"]["start"]
    assert ran["implementer"]["end"] <= min(ran["reviewer"]["start"], ran["auditor"]["start"])
    assert _overlap(ran["reviewer"], ran["auditor"])  # run in parallel, not one after the other
    # templates: the plan's output reached the implementer's task; others got the recipe's task
    assert ran["planner"]["task"] == "fix the bug"
    assert ran["implementer"]["task"] == "Implement this plan: done planner: fix the bug"
    assert ran["reviewer"]["task"] == "fix the bug"
    steps = result["steps"]
    assert [(s["id"], s["status"]) for s in steps] == [
        ("plan", "succeeded"),
        ("impl", "succeeded"),
        ("review", "succeeded"),
        ("security", "succeeded"),
    ]
    assert "## review (succeeded)" in result["output"]
    assert seen.events[0] == ("started", result["id"])
    assert seen.events[-1] == ("finished", "succeeded")
    assert ("progress", 4, 4, ()) in seen.events
    # every step is an ordinary run with its parent; all of it survives a restart
    await service.shutdown()
    again = await services(settings(ws), ws)
    parent = again.history_get(result["id"])
    assert parent["steps"] == steps and parent["agent"] == "fix-and-review"
    for step in steps:
        child = again.history_get(step["run_id"])
        assert child["parent"] == result["id"] and child["status"] == "succeeded"
        assert child["manifest"]  # a run of its own, with its own manifest


async def test_a_fan_out_runs_once_per_file_within_max_parallel(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    ws = tmp_path / "ws"
    for i in range(6):
        _write(ws, f"src/m{i}.py", f"X = {i}\n")
    _write(ws, "src/notes.txt", "not python\n")
    _write(
        ws,
        ".agents/docs.md",
        """
        ---
        steps:
          - id: docs
            agent: writer
            for_each: "src/**/*.py"
            max_parallel: 2
            task: "document {{item}}"
          - id: index
            agent: indexer
            needs: [docs]
            task: "{{steps.docs.output}}"
        ---
        """,
    )
    _agents(ws, "writer", "indexer")
    service = await services(settings(ws, delay=0.3), ws)
    result = await service.run(RunArgs(agent="docs", task="t"), NoBuffers())
    assert result["status"] == "succeeded", result
    log = _log(logdir)
    writers = [e for e in log if e["agent"] == "writer"]
    assert sorted(e["task"] for e in writers) == [f"document src/m{i}.py" for i in range(6)]
    # never more than two at once: at each start, count the runs in flight
    for e in writers:
        assert sum(1 for o in writers if o["start"] <= e["start"] < o["end"]) <= 2
    assert any(_overlap(a, b) for a in writers for b in writers if a is not b)
    items = [s["item"] for s in result["steps"] if s["id"] == "docs"]
    assert items == [f"src/m{i}.py" for i in range(6)]
    # each item's file was attached to its own run
    for step in result["steps"][:6]:
        child = service.history_get(step["run_id"])
        assert step["item"] in [m["path"] for m in child["manifest"]]
    [indexer] = [e for e in log if e["agent"] == "indexer"]
    assert "### src/m0.py\ndone writer: document src/m0.py" in indexer["task"]
    dry = await service.run(RunArgs(agent="docs", task="t", dry_run=True), NoBuffers())
    assert dry["steps"][0]["items"] == items and dry["dry_run"] is True


async def test_a_failed_step_skips_its_dependants_and_fails_the_recipe(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    ws = tmp_path / "ws"
    _write(
        ws,
        ".agents/chain.md",
        """
        ---
        steps:
          - id: first
            agent: a
            task: FAIL now
          - id: after
            agent: b
            needs: first
          - id: alone
            agent: c
            needs: slow
          - id: slow
            agent: d
        ---
        """,
    )
    _agents(ws, "a", "b", "c", "d")
    service = await services(settings(ws, delay=0.5), ws)
    result = await service.run(RunArgs(agent="chain", task="go"), NoBuffers())
    status = {s["id"]: s["status"] for s in result["steps"]}
    assert result["status"] == "failed"
    assert status["first"] == "failed" and status["after"] == "skipped"
    assert "was told to fail" in result["error"] and result["error"].startswith("step first")
    # 'slow' was already running when 'first' failed: it finishes; 'alone' never starts
    assert status["slow"] == "succeeded" and status["alone"] == "skipped"
    assert [e["agent"] for e in _log(logdir)] == ["d"]

    # continue_on_error: what does not need the failed step still runs, and the recipe succeeds
    text = (
        (ws / ".agents/chain.md").read_text().replace("steps:", "continue_on_error: true\nsteps:")
    )
    (ws / ".agents/chain.md").write_text(text)
    service.files_changed({ws / ".agents/chain.md"})
    result = await service.run(RunArgs(agent="chain", task="go"), NoBuffers())
    status = {s["id"]: s["status"] for s in result["steps"]}
    assert result["status"] == "succeeded" and result["error"] is None
    assert status == {
        "first": "failed",
        "after": "skipped",
        "alone": "succeeded",
        "slow": "succeeded",
    }
    assert any("continue_on_error" in n for n in result["notes"])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_cancelling_a_running_fan_out_stops_every_step_and_process(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    ws = tmp_path / "ws"
    for i in range(8):
        _write(ws, f"src/f{i}.py", "pass\n")
    _write(
        ws,
        ".agents/fan.md",
        """
        ---
        steps:
          - id: each
            agent: w
            for_each: "src/*.py"
            max_parallel: 3
            task: "HANG on {{item}}"
          - id: later
            agent: w
            needs: each
        ---
        """,
    )
    _agents(ws, "w")
    service = await services(settings(ws), ws)
    task = asyncio.create_task(service.run(RunArgs(agent="fan", task="go"), NoBuffers()))
    await _until(lambda: len(list(logdir.glob("pids-*"))) >= 3, "three steps never started")
    [recipe_id] = [r["id"] for r in service.status()["runs"] if r.get("kind") == "recipe"]
    pids = [int(p) for f in logdir.glob("pids-*") for p in f.read_text().split()]
    assert all(_alive(p) for p in pids)
    assert service.cancel(recipe_id) == {"cancelled": True}
    result = await asyncio.wait_for(task, HANG_BOUND)
    assert result["status"] == "cancelled"
    statuses = [s["status"] for s in result["steps"]]
    assert statuses.count("cancelled") == 9 and "running" not in statuses
    assert len(list(logdir.glob("pids-*"))) == 3  # the queued ones never started
    await _until(lambda: not any(_alive(p) for p in pids), "a step's process outlived the cancel")
    assert service.status()["runs"] == []
    assert service.cancel(recipe_id) == {"cancelled": False}


async def _hanging_recipe(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> tuple[AgentService, asyncio.Task[dict[str, Any]]]:
    """A service running the one-step recipe ``one``, whose step's process has started and
    streams until it is stopped."""
    ws = tmp_path / "ws"
    _write(ws, ".agents/one.md", "---\nsteps:\n  - id: s\n    agent: w\n    task: HANG\n---\n")
    _agents(ws, "w")
    service = await services(settings(ws), ws)
    task = asyncio.create_task(service.run(RunArgs(agent="one", task="go"), NoBuffers()))
    await _until(lambda: list(logdir.glob("pids-*")), "the step never started")
    return service, task


async def test_cancelling_the_awaiting_task_cancels_the_recipe(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    service, task = await _hanging_recipe(tmp_path, logdir, settings, services)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_BOUND)
    [recipe] = [r for r in service.history.list(limit=10) if r.steps is not None]
    assert recipe.status == "cancelled" and recipe.steps[0]["status"] == "cancelled"
    child = service.history.get(recipe.steps[0]["run_id"])
    assert child is not None and child.status == "cancelled" and child.parent == recipe.id


async def test_a_fan_out_over_the_limit_is_refused_and_shown_on_the_file(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    ws = tmp_path / "ws"
    for i in range(5):
        _write(ws, f"src/f{i}.py", "pass\n")
    _write(
        ws,
        ".agents/big.md",
        "---\nsteps:\n  - id: s\n    agent: w\n    for_each: 'src/*.py'\n---\n",
    )
    _agents(ws, "w")
    base = settings(ws)
    from dataclasses import replace

    narrow = replace(base, limits=replace(base.limits, max_fan_out=4))
    service = await services(narrow, ws)
    with pytest.raises(
        InvalidArguments, match=r"matches 5 files, more than limits.max_fan_out \(4\)"
    ):
        await service.run(RunArgs(agent="big", task="go"), NoBuffers())
    assert _log(logdir) == []
    await service.index.wait_ready(timeout=HANG_BOUND)
    await _until(
        lambda: service.registry.problems(ws / ".agents/big.md"), "the fan-out problem on the file"
    )
    [problem] = service.registry.problems(ws / ".agents/big.md")
    assert "matches 5 files, more than limits.max_fan_out (4)" in problem.message
    assert problem.line == 4  # the for_each value


async def test_a_step_cancelled_by_its_own_id_fails_the_recipe(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    service, task = await _hanging_recipe(tmp_path, logdir, settings, services)
    [step_run] = [r for r in service.status()["runs"] if r.get("kind") != "recipe"]
    assert service.cancel(step_run["id"]) == {"cancelled": True}
    result = await asyncio.wait_for(task, HANG_BOUND)
    assert result["status"] == "failed"
    assert result["error"].startswith("step s cancelled")


async def test_shutdown_during_a_recipe_records_it_cancelled(
    tmp_path: Path, logdir: Path, settings: Callable[..., Settings], services: Start
) -> None:
    service, task = await _hanging_recipe(tmp_path, logdir, settings, services)
    await service.shutdown()
    result = await asyncio.wait_for(task, HANG_BOUND)
    assert result["status"] == "cancelled"
    ws = tmp_path / "ws"
    again = await services(settings(ws), ws)
    stored = again.history_get(result["id"])
    assert stored["status"] == "cancelled" and stored["steps"][0]["status"] == "cancelled"


def test_one_broken_step_does_not_hide_the_others_problems() -> None:
    text = (
        textwrap.dedent(RECIPE)
        .lstrip("\n")
        .replace("agent: planner", "agent: planner\n    bogus: 1")
        .replace("needs: impl", "needs: [impl, nope]")
    )
    problems = _problems(text)
    assert any("unknown step key 'bogus'" in p for p in problems), problems
    assert any("needs 'nope': no step has that id" in p for p in problems), problems
    # the broken step's id still counts: needing it is not "no step has that id"
    assert not any("needs 'plan'" in p for p in problems), problems
