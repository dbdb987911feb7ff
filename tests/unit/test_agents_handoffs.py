"""Copilot ``handoffs`` in agent files: read leniently, each problem at its line, never an error."""

from __future__ import annotations

import os
from pathlib import Path

from agentls.agents.definition import parse_definition
from agentls.agents.handoffs import Handoff
from agentls.agents.registry import AgentRegistry

SOURCE = Path("/work/project/.github/agents/planner.agent.md")


def parse(front: str) -> tuple[tuple[Handoff, ...], list[tuple[str, int, str]]]:
    """The handoffs of a front matter, and its problems as (severity, 0-based line, message)."""
    result = parse_definition(f"---\n{front}---\nPlan.\n", SOURCE)
    assert result.definition is not None, result.problems
    problems = [(p.severity, p.line, p.message) for p in result.problems]
    return result.definition.handoffs, problems


def test_every_field_is_read_and_send_defaults_to_false() -> None:
    handoffs, problems = parse(
        "handoffs:\n"
        "  - label: Start Implementation\n"  # line 2
        "    agent: implementer\n"
        "    prompt: Now implement the plan outlined above.\n"
        "    send: true\n"
        "  - label: Review\n"  # line 6
        "    agent: reviewer\n"
    )
    assert problems == []
    assert handoffs == (
        Handoff(
            "Start Implementation", "implementer", "Now implement the plan outlined above.", True
        ),
        Handoff("Review", "reviewer", "", False),
    )
    assert handoffs[1].to_dict() == {
        "label": "Review",
        "agent": "reviewer",
        "prompt": "",
        "send": False,
    }


def test_flow_style_and_quoted_values_as_copilot_files_write_them() -> None:
    handoffs, problems = parse(
        "handoffs: [{label: 'Full Audit', agent: \"document-wizard\", prompt: 'Return.'}]\n"
    )
    assert problems == []
    assert handoffs == (Handoff("Full Audit", "document-wizard", "Return.", False),)


def test_malformed_entries_are_left_out_with_a_hint_at_their_line() -> None:
    handoffs, problems = parse(
        "handoffs:\n"
        "  - Next step\n"  # line 2: not a mapping
        "  - agent: planner\n"  # line 3: no label
        "  - label: Empty\n"  # line 4
        "    agent: ''\n"  # line 5: empty agent
        "  - label: Number\n"
        "    agent: planner\n"
        "    prompt: 42\n"  # line 8: not text
        "  - label: Word\n"
        "    agent: planner\n"
        "    send: 'yes'\n"  # line 11: a string, not a boolean
        "  - label: Kept\n"  # line 12
        "    agent: planner\n"
        "    model: GPT-5 (copilot)\n"  # line 14: a key agentls does not read
        "  - label: Kept\n"  # line 15: a second button with the same label
        "    agent: reviewer\n"
    )
    assert handoffs == (Handoff("Kept", "planner"),)
    assert all(severity == "hint" for severity, _, _ in problems)
    lines = {line: message for _, line, message in problems}
    assert sorted(lines) == [2, 3, 5, 8, 11, 14, 15]
    assert lines[2] == "a handoff must be a mapping with label and agent, not a string; left out"
    assert lines[3] == "handoff label is missing; this handoff is left out"
    assert lines[5].startswith("handoff agent must be a non-empty string")
    assert lines[8] == "handoff prompt must be a string, not a number; this handoff is left out"
    assert lines[11] == "handoff send must be true or false, not a string; this handoff is left out"
    assert lines[14] == "handoff key 'model' is not one agentls reads; it is ignored"
    assert lines[15] == "another handoff is labelled 'Kept'; left out"


def test_a_handoffs_value_that_is_not_a_list_is_a_hint_and_the_agent_still_runs() -> None:
    handoffs, problems = parse("description: Plans\nhandoffs: implementer\n")
    assert handoffs == ()
    assert problems == [
        (
            "hint",
            2,
            "handoffs must be a list of {label, agent, prompt, send}, not a string; "
            "agentls ignores it",
        )
    ]
    assert parse("handoffs:\n") == ((), [])  # empty: no handoffs, nothing to say


def test_labels_and_names_are_one_line_and_prompts_keep_their_lines() -> None:
    handoffs, _ = parse(
        "handoffs:\n"
        '  - label: "  Hand  off\\n now "\n'
        "    agent: ' implementer '\n"
        "    prompt: |\n"
        "      First line.\n"
        "      Second line.\n"
    )
    assert handoffs == (Handoff("Hand off now", "implementer", "First line.\nSecond line.", False),)


def _registry(tmp_path: Path, files: dict[str, str]) -> tuple[AgentRegistry, Path]:
    root = Path(os.path.realpath(tmp_path))
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    reg = AgentRegistry()
    reg.load_folder(root)
    reg.set_backends(["local"], "local")
    return reg, root


PLANNER = """---
description: Plans a change
handoffs:
  - label: Implement
    agent: Implementer
    prompt: Implement the plan above.
  - label: Ask Copilot
    agent: agent
  - label: Review
    agent: reviewer
    send: true
---
Plan the change.
"""


def test_targets_are_checked_against_the_workspace_agents(tmp_path: Path) -> None:
    reg, root = _registry(
        tmp_path,
        {
            ".github/agents/planner.agent.md": PLANNER,
            ".agents/implementer.md": "---\ndescription: Implements\n---\nDo it.\n",
        },
    )
    planner = root / ".github/agents/planner.agent.md"
    problems = {(p.severity, p.line, p.column, p.message) for p in reg.problems(planner)}
    assert problems == {
        (
            "warning",
            4,
            11,
            "handoff 'Implement': no agent named 'Implementer' in this workspace; "
            "did you mean 'implementer'?",
        ),
        (
            "hint",
            7,
            11,
            "handoff 'Ask Copilot': 'agent' is one of Copilot's built-in agents; agentls has no "
            "agent by that name, so it cannot run this handoff",
        ),
        ("warning", 9, 11, "handoff 'Review': no agent named 'reviewer' in this workspace"),
    }
    [entry] = [e for e in reg.agents() if e.name == "planner"]
    assert entry.valid  # a handoff never stops the agent running
    assert [h["label"] for h in entry.to_dict(str)["handoffs"]] == [
        "Implement",
        "Ask Copilot",
        "Review",
    ]

    # the missing agent appears: its warning goes, the others stay
    reviewer = root / ".agents/reviewer.md"
    reviewer.write_text("---\ndescription: Reviews\n---\nReview.\n", encoding="utf-8")
    assert planner in reg.update(reviewer, None)
    assert [p.line for p in reg.problems(planner)] == [4, 7]
