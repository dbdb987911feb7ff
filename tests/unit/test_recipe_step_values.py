"""A recipe fills ``{{steps.<id>.output}}`` and ``.edits`` once per finished step, only when named.

Every unit of a later step used to join the outputs (and count the diff lines) of every finished
step, whether its template named them or not: for a fan-out after a 200-file fan-out, 200 joins of
200 outputs on the event loop (seconds with long outputs). These tests run a ``RecipeRun`` with a
``launch`` that answers at once and count the joins.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentls.agents.definition import AgentDefinition, parse_definition
from agentls.execution.engine import RunObserver
from agentls.execution.recipes import RecipeRun, Unit
from agentls.requests import RunArgs

FILES = [f"src/m{i}.py" for i in range(5)]


def _recipe(later_task: str) -> AgentDefinition:
    text = textwrap.dedent(
        f"""
        ---
        name: two
        steps:
          - id: a
            agent: w
            for_each: "src/*.py"
          - id: b
            agent: w
            needs: [a]
            for_each: "src/*.py"
            task: "{later_task}"
        ---
        """
    ).lstrip()
    recipe = parse_definition(text, Path("/w/.agents/two.md")).definition
    assert recipe is not None and recipe.is_recipe
    return recipe


async def _run(recipe: AgentDefinition) -> dict[str, str]:
    """Run the recipe; the task each unit of step ``b`` was given, by file."""
    tasks: dict[str, str] = {}

    async def launch(args: RunArgs, observer: RunObserver | None, parent: str) -> dict[str, Any]:
        item = args.variables["item"]
        if args.task.startswith("check"):
            tasks[item] = args.task
        edit = {"id": "e1", "path": item, "diff": "--- a\n+++ b\n+new\n-old\n+more\n"}
        return {
            "id": f"{args.task[:5]}-{item}",
            "status": "succeeded",
            "output": f"out {item}",
            "edits": [edit],
        }

    items = [(f, Path("/w") / f) for f in FILES]
    run = RecipeRun(
        "r1",
        recipe,
        RunArgs(agent="two", task="review"),
        items={"a": items, "b": items},
        launch=launch,
        default_task=lambda agent: "",
        max_in_flight=4,
        max_output_chars=1 << 20,
    )
    record = await run.run()
    assert record.status == "succeeded", record.error
    return tasks


@pytest.fixture
def joins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each join of a step's outputs or edits the recipe makes."""
    made: list[str] = []
    outputs, edits = RecipeRun._outputs, RecipeRun._edit_summary

    def count_outputs(units: Sequence[Unit]) -> str:
        made.append("output")
        return outputs(units)

    def count_edits(units: Sequence[Unit]) -> str:
        made.append("edits")
        return edits(units)

    monkeypatch.setattr(RecipeRun, "_outputs", staticmethod(count_outputs))
    monkeypatch.setattr(RecipeRun, "_edit_summary", staticmethod(count_edits))
    return made


async def test_a_template_that_names_no_step_builds_no_step_value(joins: list[str]) -> None:
    tasks = await _run(_recipe("check {{item}}"))
    assert tasks == {f: f"check {f}" for f in FILES}
    assert joins == []


async def test_a_named_step_output_is_built_once_for_every_unit(joins: list[str]) -> None:
    tasks = await _run(_recipe("check {{item}} after {{steps.a.output}}"))
    whole = "\n\n".join(f"### {f}\nout {f}" for f in FILES)
    assert tasks == {f: f"check {f} after {whole}" for f in FILES}
    assert joins == ["output"]  # once, not once per unit of b; edits never asked for


async def test_a_named_step_edits_summary_is_built_once(joins: list[str]) -> None:
    tasks = await _run(_recipe("check {{item}} given {{steps.a.edits}}"))
    summary = "\n".join(f"- {f}: edit a[{n}]/e1 (+2 -1)" for n, f in enumerate(FILES))
    assert tasks == {f: f"check {f} given {summary}" for f in FILES}
    assert joins == ["edits"]
