"""Recipes end to end: the real server, its notifications and progress, the three ways to cancel,
and a recipe's edits applied together through ``workspace/applyEdit``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import Session, SessionFactory, wait_until, write
from tests.e2e.test_tools import EditingClient, editing_session
from tests.fakes.providers import Call, FakeProvider, stream, tool_calls

PIPELINE = """
---
name: pipeline
description: Plan, then two reviews in parallel
handoffs:
  - label: Fix what they found
    agent: reviewer
    prompt: Fix the findings above.
steps:
  - id: plan
    agent: reviewer
    task: "plan {{task}}"
  - id: left
    agent: reviewer
    needs: plan
    task: "left after {{steps.plan.output}}"
  - id: right
    agent: reviewer
    needs: plan
---
Runs the reviewer three times.
"""


async def add_recipe(session: Session, rel: str, text: str) -> Path:
    """Write a recipe into the running session's workspace; wait until the server lists it."""
    path = write(session.root, rel, text)
    name = path.name.removesuffix(".md")

    async def listed() -> bool:
        answer = await session.command("agentls.agents.list", {})
        return any(a["name"] == name or a["source"] == rel for a in answer["agents"])

    deadline = asyncio.get_running_loop().time() + 20
    while not await listed():
        assert asyncio.get_running_loop().time() < deadline, f"{rel} was never listed"
        await asyncio.sleep(0.05)
    return path


async def test_a_recipe_reports_one_progress_and_parented_step_notifications(
    session: Session,
) -> None:
    await add_recipe(session, ".agents/pipeline.md", PIPELINE)
    listed = await session.command("agentls.agents.list", {})
    [recipe] = [a for a in listed["agents"] if a["name"] == "pipeline"]
    assert recipe["kind"] == "recipe" and recipe["valid"], recipe
    assert [s["id"] for s in recipe["steps"]] == ["plan", "left", "right"]
    token = "recipe-progress"
    session.client.progress_reports.setdefault(token, [])
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="agentls.run",
            arguments=[{"agent": "pipeline", "task": "alpha"}],
            work_done_token=token,
        )
    )
    assert result["status"] == "succeeded", result
    assert result["handoffs"] == [
        {
            "label": "Fix what they found",
            "agent": "reviewer",
            "prompt": "Fix the findings above.",
            "send": False,
        }
    ]
    recipe_id = result["id"]
    assert [(s["id"], s["status"]) for s in result["steps"]] == [
        ("plan", "succeeded"),
        ("left", "succeeded"),
        ("right", "succeeded"),
    ]
    await wait_until(lambda: len(session.recorded.finished) >= 4)
    started = session.recorded.started
    assert started[0] == {"id": recipe_id, "agent": "pipeline", "task": "alpha", "kind": "recipe"}
    steps = [n for n in started if n.get("parent") == recipe_id]
    assert sorted(n["step"] for n in steps) == ["left", "plan", "right"]
    by_step = {n["step"]: n for n in steps}
    assert by_step["plan"]["task"] == "plan alpha"
    assert by_step["left"]["task"].startswith("left after echo: plan alpha")
    finished = session.recorded.finished
    assert finished[-1] == {
        "id": recipe_id,
        "agent": "pipeline",
        "status": "succeeded",
        "kind": "recipe",
    }
    assert sorted(n["id"] for n in finished if n.get("parent") == recipe_id) == sorted(
        s["run_id"] for s in result["steps"]
    )
    # each step's output streams under its own run id
    for step in result["steps"]:
        assert any(o["id"] == step["run_id"] for o in session.recorded.output)
    reports = session.client.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    messages = [r.message for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert "3/3 steps" in messages and any(m and m.startswith("1/3 steps") for m in messages)
    stored = await session.command("agentls.history.get", {"id": recipe_id})
    assert stored["steps"] == result["steps"] and stored["parent"] is None
    child = await session.command("agentls.history.get", {"id": result["steps"][1]["run_id"]})
    assert child["parent"] == recipe_id and child["agent"] == "reviewer"


async def test_a_recipe_naming_a_missing_agent_is_an_error_diagnostic(session: Session) -> None:
    typo = PIPELINE.replace(
        "agent: reviewer\n    needs: plan\n    task", "agent: reviewr\n    needs: plan\n    task", 1
    )
    path = write(session.root, ".agents/pipeline.md", typo)

    def published() -> list[types.Diagnostic]:
        return [
            d
            for d in session.client.diagnostics.get(path.as_uri(), [])
            if "no agent is named 'reviewr'" in d.message
        ]

    [diagnostic] = await wait_until(published, 10)
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.range.start.line == 12  # the step's agent value
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.run", {"agent": "pipeline", "task": "x"})
    assert info.value.code == -32602
    assert "no agent is named 'reviewr'" in info.value.message
    assert "did you mean 'reviewer'" in info.value.message


SLOW_RECIPE = """
---
name: slow-recipe
steps:
  - id: wait
    agent: slow
  - id: after
    agent: reviewer
    needs: wait
---
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("how", ["runs.cancel", "cancelRequest", "progress"])
async def test_cancelling_a_recipe_stops_its_running_step(session: Session, how: str) -> None:
    await add_recipe(session, ".agents/slow-recipe.md", SLOW_RECIPE)
    token = "recipe-cancel"
    session.client.progress_reports.setdefault(token, [])
    params = types.ExecuteCommandParams(
        command="agentls.run",
        arguments=[{"agent": "slow-recipe", "task": "x"}],
        work_done_token=token if how == "progress" else None,
    )
    run = asyncio.ensure_future(
        session.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="recipe-1"
        )
    )
    pidfile = session.root / "slow.pids"
    await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20)
    pids = [int(p) for p in pidfile.read_text().split()]
    await wait_until(lambda: session.recorded.output)
    [recipe_id] = [n["id"] for n in session.recorded.started if n.get("kind") == "recipe"]
    if how == "runs.cancel":
        answer = await session.command("agentls.runs.cancel", {"id": recipe_id})
        assert answer == {"cancelled": True}
    elif how == "cancelRequest":
        session.client.cancel_request(types.CancelParams(id="recipe-1"))
    else:
        session.client.window_work_done_progress_cancel(
            types.WorkDoneProgressCancelParams(token=token)
        )
    await wait_until(lambda: not any(_alive(p) for p in pids), timeout=10)
    if how == "cancelRequest":
        with pytest.raises(JsonRpcException) as info:
            await asyncio.wait_for(run, 10)
        assert info.value.code == -32800
    else:
        result = await asyncio.wait_for(run, 10)
        assert result["status"] == "cancelled"
    await wait_until(
        lambda: any(n["id"] == recipe_id for n in session.recorded.finished), timeout=10
    )
    stored = await session.command("agentls.history.get", {"id": recipe_id})
    assert stored["status"] == "cancelled"
    assert [(s["id"], s["status"]) for s in stored["steps"]] == [
        ("wait", "cancelled"),
        ("after", "cancelled"),
    ]
    status = await session.command("agentls.status", {})
    assert status["runs"] == []


# -- edits -----------------------------------------------------------------------------------


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider("openai") as fake:
        yield fake


@pytest.fixture
async def edit_session(
    open_session: SessionFactory, workspace: Path, provider: FakeProvider
) -> AsyncIterator[tuple[Session, EditingClient]]:
    write(workspace, ".agents/fixer.md", "---\ntools: [read, edit]\n---\nFix.\n")
    write(
        workspace,
        ".agents/fix-twice.md",
        """
        ---
        steps:
          - id: first
            agent: fixer
          - id: second
            agent: fixer
            needs: first
        ---
        """,
    )
    async with editing_session(open_session, workspace, provider) as pair:
        yield pair


def _propose(path: str, old: str, new: str) -> Call:
    return Call("propose_edit", {"path": path, "old_text": old, "new_text": new})


async def test_a_recipes_edits_are_applied_together_by_its_id(
    edit_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, editor = edit_session
    provider.script(
        tool_calls(_propose("src/app.py", "'hello from disk'", "'hello'")),
        stream("first done"),
        tool_calls(_propose("src/util.py", "return 42", "return 43")),
        stream("second done"),
    )
    result = await session.command("agentls.run", {"agent": "fix-twice", "task": "fix"})
    assert result["status"] == "succeeded", result
    assert [e["id"] for e in result["edits"]] == ["first/e1", "second/e1"]
    assert [e["step"] for e in result["edits"]] == ["first", "second"]
    applied = await session.command("agentls.edits.apply", {"id": result["id"]})
    assert applied["applied"] is True and applied["edits"] == ["first/e1", "second/e1"]
    [params] = editor.received
    assert params.label == "agentls: fix-twice"
    assert (session.root / "src/app.py").read_text() == "def main():\n    return 'hello'\n"
    assert (session.root / "src/util.py").read_text() == "def helper():\n    return 43\n"
    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert [e["state"] for e in stored["edits"]] == ["applied", "applied"]
    # the state lives in the step's own run: it says applied too
    child = await session.command("agentls.history.get", {"id": result["edits"][0]["run_id"]})
    assert [e["state"] for e in child["edits"]] == ["applied"]


async def test_conflicting_edits_of_two_steps_are_refused(
    edit_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, editor = edit_session
    provider.script(
        tool_calls(_propose("src/app.py", "'hello from disk'", "'one'")),
        stream("first done"),
        tool_calls(_propose("src/app.py", "return 'hello from disk'", "return 'two'")),
        stream("second done"),
    )
    result = await session.command("agentls.run", {"agent": "fix-twice", "task": "fix"})
    assert result["status"] == "succeeded", result
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.edits.apply", {"id": result["id"]})
    assert info.value.code == -32602
    assert "first/e1 and second/e1 both change src/app.py" in info.value.message
    assert editor.received == []
    assert "hello from disk" in (session.root / "src/app.py").read_text()
    # one of them can still be chosen
    applied = await session.command(
        "agentls.edits.apply", {"id": result["id"], "edits": ["second/e1"]}
    )
    assert applied["applied"] is True
    assert (session.root / "src/app.py").read_text() == "def main():\n    return 'two'\n"
    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert [e["state"] for e in stored["edits"]] == ["proposed", "applied"]


# -- the command line --------------------------------------------------------------------------


def test_agentls_run_prints_each_steps_progress(workspace: Path, tmp_path: Path) -> None:
    write(workspace, ".agents/pipeline.md", PIPELINE)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "AGENTLS_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "agentls", "run", "--workspace", str(workspace), "--trust"]
    done = subprocess.run(
        [*command, "pipeline", "--task", "alpha"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("agentls: step plan (reviewer) started") for line in lines)
    assert any(line.startswith("agentls: step right (reviewer) succeeded") for line in lines)
    assert "agentls: 3/3 steps done" in lines
    assert (
        "agentls: next: Fix what they found: agentls run reviewer --task 'Fix the findings above.'"
        in lines
    )
    assert "## plan (succeeded)\n\necho: plan alpha" in done.stdout
    assert "## left (succeeded)\n\necho: left after echo: plan alpha" in done.stdout
    dry = subprocess.run(
        [*command, "pipeline", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "plan: reviewer",
        "left: reviewer after plan",
        "right: reviewer after plan",
    ]


async def test_a_recipe_file_has_a_run_lens_and_is_no_code_action(session: Session) -> None:
    path = await add_recipe(session, ".agents/pipeline.md", PIPELINE)
    lenses = await session.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=path.as_uri()))
    )
    titles = [lens.command.title for lens in lenses or [] if lens.command]
    assert titles == ["▶ Run", "Recipe: 3 steps"]
    src = session.root / "src" / "app.py"
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=src.as_uri()),
            range=types.Range(start=types.Position(0, 0), end=types.Position(0, 3)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    offered = [a.title for a in actions or []]
    assert offered and not any("pipeline" in t for t in offered)
