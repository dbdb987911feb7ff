"""Result documents and context summaries (the data behind code actions and code lenses)."""

from __future__ import annotations

from pathlib import Path

from agentls.context.summaries import ContextSummaries, Summary
from agentls.execution import outputs


def test_summaries_go_stale_on_invalidate_and_keep_the_newest() -> None:
    s = ContextSummaries()
    assert s.get("a") == (None, False)
    generation = s.generation
    assert s.store("a", generation, Summary(2, 100)) is True
    assert s.get("a") == (Summary(2, 100), True)
    assert s.store("a", generation, Summary(2, 100)) is False  # unchanged: no refresh needed
    s.invalidate()
    assert s.get("a") == (Summary(2, 100), False)
    assert s.store("a", s.generation, Summary(3, 120)) is True
    assert s.store("a", generation, Summary(1, 1)) is False  # an older computation lands late
    assert s.get("a") == (Summary(3, 120), True)
    s.forget({"b"})
    assert s.agents() == []


def test_documents_are_private_and_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    paths = [
        outputs.write_document(folder, "a/../b", f"r{i}", f"text {i}", preview=False)
        for i in range(outputs.MAX_DOCUMENTS + 3)
    ]
    kept = sorted(folder.iterdir())
    assert len(kept) == outputs.MAX_DOCUMENTS
    assert paths[-1] in kept and paths[0] not in kept
    assert paths[-1].parent == folder and paths[-1].name.startswith("a_.._b-")
    assert paths[-1].stat().st_mode & 0o077 == 0


def test_rendered_run_and_preview() -> None:
    run = outputs.render_run(
        {"agent": "x", "status": "succeeded", "id": "r1", "task": "", "output": "hello\n"}
    )
    assert run.startswith("# x: succeeded") and run.endswith("hello\n")
    preview = outputs.render_preview(
        "x",
        {
            "prompt": "```code```",
            "manifest": [
                {"path": "a|b.py", "source": "glob", "status": "included", "tokens": 5},
                {"path": ".env", "source": "glob", "status": "excluded", "reason": "secret"},
            ],
        },
    )
    assert "1 files, ~5 tokens" in preview
    assert "a\\|b.py" in preview
    assert "\n````\n```code```\n````\n" in preview  # a fence longer than the prompt's own
