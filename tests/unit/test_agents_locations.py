"""Where definitions live is defined once; the VS Code extension's copy is generated from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentls.agents.locations import (
    DEFINITION_GLOBS,
    LOCATION_PARENTS,
    extension_locations,
    extension_source,
    format_of,
    location_of,
    may_hold_definitions,
)

EXTENSION = Path(__file__).resolve().parents[2] / "vscode-extension"


def test_the_extensions_watcher_glob_is_generated_from_the_locations() -> None:
    generated = (EXTENSION / "src" / "locations.ts").read_text(encoding="utf-8")
    assert generated == extension_source(), "run: python -m agentls.agents.locations"
    extension = (EXTENSION / "src" / "extension.ts").read_text(encoding="utf-8")
    assert "createFileSystemWatcher(AGENT_FILES_GLOB)" in extension
    assert ".claude/agents" not in extension  # no hand-kept copy


def test_the_extension_activates_on_every_location() -> None:
    package = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    events = [e for e in package["activationEvents"] if e.startswith("workspaceContains:.")]
    assert events == extension_locations()["activationEvents"]
    assert len(events) == len(DEFINITION_GLOBS)


@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        (".agents/team/reviewer.md", "agentls"),
        (".claude/agents/review/deep/reviewer.md", "claude"),
        (".github/agents/reviewer.agent.md", "copilot"),
        (".github/agents/reviewer.md", "copilot"),
        (".github/prompts/fix.prompt.md", "copilot-prompt"),
        (".claude/agents/readme.MD", None),
        (".claude/agents/Readme.md", None),
        (".github/agents/AGENTS.md", None),
        (".github/agents/.hidden.md", None),
        (".claude/agents/review/.cache/x.md", None),
        (".github/prompts/fix.md", None),
        ("docs/.claude/agents/x.md", None),
        (".claude\\agents\\x.md", None),
        (".claude/agents/../agents/x.md", None),
    ],
)
def test_locations_and_formats(rel: str, fmt: str | None) -> None:
    location = location_of(rel)
    assert (location.format if location else None) == fmt
    if fmt is not None:
        assert format_of(Path("/w") / rel) == fmt


def test_folders_whose_moves_change_definitions() -> None:
    assert {
        ".agents",
        ".claude",
        ".claude/agents",
        ".github",
        ".github/agents",
        ".github/prompts",
    } == LOCATION_PARENTS
    assert may_hold_definitions(".claude/agents/review")  # a category folder
    assert may_hold_definitions(".agents/team")
    assert not may_hold_definitions(".github/agents/sub")  # not searched
    assert not may_hold_definitions("src/app.py")
