"""A recipe's edits, applied by its id: gathered from its steps' records, refused when two overlap.

Records are written to a real history database as a recipe run leaves them (a parent whose
``steps`` name the steps' runs, each owning its edits), then ``edits_to_apply`` is asked the way
``agentls.edits.apply`` asks it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentls.config import load_settings
from agentls.errors import EditConflict
from agentls.execution.records import RunRecord
from agentls.requests import EditsApplyArgs
from agentls.service import AgentService, NoBuffers
from agentls.tools.edits import content_hash

TEXT = "alpha = 1\nbeta = 2\ngamma = 3\n"


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AgentService]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "a.py").write_text(TEXT)
    service = AgentService(load_settings([ws]), [ws], watch=False)
    await service.start()
    yield service
    await service.shutdown()


def _edit(
    service: AgentService, line: int, old: str, new: str, base: str | None = None
) -> dict[str, Any]:
    path = service.roots.folders[0] / "src" / "a.py"
    return {
        "id": "e1",
        "path": "src/a.py",
        "uri": path.as_uri(),
        "range": {
            "start": {"line": line, "character": 0},
            "end": {"line": line, "character": len(old)},
        },
        "old_text": old,
        "new_text": new,
        "diff": "",
        "base": base or content_hash(TEXT),
        "create": False,
        "state": "proposed",
    }


def _recipe(service: AgentService, *edits: dict[str, Any]) -> str:
    steps = []
    for n, edit in enumerate(edits):
        run_id = f"child{n}"
        service.history.add(
            RunRecord(run_id, "fixer", "t", "succeeded", "", 1.0, 1.0, edits=[edit], parent="r1")
        )
        steps.append({"id": f"s{n}", "agent": "fixer", "run_id": run_id, "status": "succeeded"})
    service.history.add(RunRecord("r1", "recipe", "t", "succeeded", "", 1.0, 1.0, steps=steps))
    return "r1"


async def test_edits_of_two_steps_to_different_lines_go_together(service: AgentService) -> None:
    recipe = _recipe(service, _edit(service, 0, "alpha", "ALPHA"), _edit(service, 2, "gamma", "G"))
    batch = await service.edits_to_apply(EditsApplyArgs(recipe), NoBuffers())
    assert [e["id"] for e in batch.edits] == ["s0/e1", "s1/e1"]
    assert service.edits_settled(recipe, ["s0/e1", "s1/e1"], "applied") == 2
    child = service.history.get("child1")
    assert child is not None and child.edits[0]["state"] == "applied"


async def test_overlapping_edits_of_two_steps_are_refused(service: AgentService) -> None:
    recipe = _recipe(service, _edit(service, 1, "beta", "B"), _edit(service, 1, "beta", "BB"))
    with pytest.raises(EditConflict, match=r"s0/e1 and s1/e1 both change src/a\.py"):
        await service.edits_to_apply(EditsApplyArgs(recipe), NoBuffers())
    # either one alone is fine
    batch = await service.edits_to_apply(EditsApplyArgs(recipe, ("s1/e1",)), NoBuffers())
    assert [e["new_text"] for e in batch.edits] == ["BB"]


async def test_edits_against_different_versions_are_refused(service: AgentService) -> None:
    other = content_hash("alpha = 0\n")
    recipe = _recipe(
        service, _edit(service, 0, "alpha", "A"), _edit(service, 2, "gamma", "G", base=other)
    )
    with pytest.raises(EditConflict, match=r"different versions of src/a\.py"):
        await service.edits_to_apply(EditsApplyArgs(recipe), NoBuffers())
