"""Real repositories' agent layouts end to end: symlinked folders, Copilot files, models.

Each test drives the real server over stdio. The model test runs against a fake OpenAI-compatible
provider that refuses unknown models with a 404, as a local server does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import SessionFactory, wait_until, write
from tests.fakes.providers import FakeProvider

HELPER = """\
---
name: helper
description: Use this agent when: the tests fail. Triggers on: red builds
model: sonnet
tools: Read, Grep, Bash(npm test:*)
---
You help with {{task}} in the terminal.
"""


CAT = {"default_backend": "cat", "backends": {"cat": {"kind": "command", "argv": ["cat"]}}}
"""A backend for tests that only list agents or dry-run them."""


def _by_name(listed: Any) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in listed["agents"]}


async def test_a_symlinked_claude_agents_folder_with_category_folders(
    open_session: SessionFactory, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    write(root, "plugins/core/agents/reviewer.md", HELPER.replace("helper", "reviewer"))
    write(root, "plugins/core/agents/testing/tester.md", HELPER.replace("helper", "tester"))
    write(root, "plugins/core/agents/CLAUDE.md", "# How these agents work\n")
    write(root, "plugins/core/agents/notes.md", "Just notes, no front matter.\n")
    (root / ".claude").mkdir()
    (root / ".claude/agents").symlink_to("../plugins/core/agents")
    outside = write(tmp_path / "elsewhere", "far.md", HELPER.replace("helper", "far"))
    (root / ".github").mkdir()
    (root / ".github/agents").symlink_to(outside.parent)

    async with open_session(root, init_options=CAT) as session:
        listed = _by_name(await session.command("agentls.agents.list"))
        assert sorted(listed) == ["reviewer", "tester"]
        tester = listed["tester"]
        assert tester["source"] == ".claude/agents/testing/tester.md"
        assert tester["valid"] is True
        assert tester["tools"] == ["Read", "Grep", "Bash(npm test:*)"]
        assert tester["tool_groups"] == ["read", "search", "execute"]
        # the file without front matter is not an agent, and the editor is told why
        notes = session.uri(".claude/agents/notes.md")
        await wait_until(lambda: notes in session.client.diagnostics)
        (info,) = session.client.diagnostics[notes]
        assert info.severity == 3 and "no front matter" in info.message
        # the link out of the workspace is not followed (doctor and the log name it)
        assert "far" not in listed

        run = await session.command(
            "agentls.run", {"agent": "tester", "task": "fix the build", "dry_run": True}
        )
        assert run["status"] == "succeeded"
        assert "You help with fix the build in the terminal." in run["prompt"]

        # a new agent in the linked folder is picked up through the link's name
        # (written again every 2 s: a write made before the watcher is live is not seen, and on
        # a loaded machine the watcher may still be starting; 30 s only catches a hang)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        written = 0.0
        while "linter" not in listed and loop.time() < deadline:
            if loop.time() - written > 2:
                write(
                    root,
                    "plugins/core/agents/testing/linter.md",
                    HELPER.replace("helper", "linter"),
                )
                written = loop.time()
            await asyncio.sleep(0.05)
            listed = _by_name(await session.command("agentls.agents.list"))
        assert listed["linter"]["source"] == ".claude/agents/testing/linter.md"


@pytest.fixture
def strict_provider() -> Iterator[FakeProvider]:
    with FakeProvider("openai", strict_models=True) as fake:
        yield fake


async def test_model_sonnet_runs_on_a_local_openai_compatible_server(
    open_session: SessionFactory, tmp_path: Path, strict_provider: FakeProvider
) -> None:
    root = tmp_path / "repo"
    write(root, ".claude/agents/helper.md", HELPER)
    backend = {"kind": "openai", "base_url": strict_provider.base_url, "model": "fake-model"}
    options = {"default_backend": "local", "backends": {"local": backend}}
    async with open_session(root, init_options=options) as session:
        helper = _by_name(await session.command("agentls.agents.list"))["helper"]
        assert (helper["model"], helper["model_requested"], helper["model_source"]) == (
            "fake-model",
            "sonnet",
            "backend",
        )
        result = await session.command("agentls.run", {"agent": "helper", "task": "go"})
        assert result["status"] == "succeeded", result
        assert result["output"] == "Hello, world!"
        assert result["model"] == "fake-model"
        assert result["model_source"] == "backend"
        assert "Claude Code alias" in result["model_note"]
        sent = strict_provider.requests[-1].json
        assert sent is not None and sent["model"] == "fake-model"
        # the file gets a hint on its model line, saying how to choose
        uri = session.uri(".claude/agents/helper.md")
        await wait_until(lambda: uri in session.client.diagnostics)
        messages = [d.message for d in session.client.diagnostics[uri]]
        assert any("[models] sonnet" in m for m in messages), messages

    # an alias in [models] chooses the model instead
    options["models"] = {"sonnet": "fake-model"}
    async with open_session(root, init_options=options) as session:
        result = await session.command("agentls.run", {"agent": "helper", "task": "go"})
        assert result["status"] == "succeeded", result
        assert (result["model"], result["model_source"]) == ("fake-model", "alias")


async def test_copilot_prompt_files_run_with_their_inputs(
    open_session: SessionFactory, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    write(
        root,
        ".github/prompts/create-readme.prompt.md",
        "---\nmode: agent\ndescription: Create a README\ntools: ['codebase', 'editFiles']\n---\n"
        "Write a README for ${input:project:Project name} in ${workspaceFolderBasename}.\n",
    )
    async with open_session(root, init_options=CAT) as session:
        prompt = _by_name(await session.command("agentls.agents.list"))["create-readme"]
        assert prompt["valid"] is True
        assert prompt["format"] == "copilot-prompt"
        assert prompt["inputs"] == [{"name": "project", "placeholder": "Project name"}]
        assert prompt["tool_groups"] == ["search", "edit"]
        with pytest.raises(JsonRpcException) as refused:
            await session.command(
                "agentls.run", {"agent": "create-readme", "task": "now", "dry_run": True}
            )
        assert refused.value.code == -32602
        assert "${input:project} (Project name)" in refused.value.message
        run = await session.command(
            "agentls.run",
            {
                "agent": "create-readme",
                "task": "now",
                "dry_run": True,
                "variables": {"project": "agentls"},
            },
        )
        assert "Write a README for agentls in repo." in run["prompt"]


PLANNER_WITH_HANDOFFS = """\
---
description: Plans a change
handoffs:
  - label: Review the plan
    agent: reviewer
    prompt: Review the plan above for risks.
    send: true
  - label: Implement
    agent: implementer
    prompt: Implement the plan above.
---
Plan {{task}}.
"""


async def test_copilot_handoffs_are_listed_and_come_back_with_each_run(
    open_session: SessionFactory, workspace: Path
) -> None:
    """The buttons an editor offers after a run: in the agent list, in the run's result, and a
    warning on the file for a handoff to an agent the workspace does not have."""
    write(workspace, ".github/agents/planner.agent.md", PLANNER_WITH_HANDOFFS)
    expected = [
        {
            "label": "Review the plan",
            "agent": "reviewer",
            "prompt": "Review the plan above for risks.",
            "send": True,
        },
        {
            "label": "Implement",
            "agent": "implementer",
            "prompt": "Implement the plan above.",
            "send": False,
        },
    ]
    async with open_session(workspace) as session:
        planner = _by_name(await session.command("agentls.agents.list"))["planner"]
        assert planner["valid"] is True
        assert planner["handoffs"] == expected
        assert planner["problems"] == [
            "line 9: warning: handoff 'Implement': no agent named 'implementer' in this workspace"
        ]
        uri = session.uri(".github/agents/planner.agent.md")
        await wait_until(lambda: uri in session.client.diagnostics)
        [warning] = session.client.diagnostics[uri]
        assert warning.severity == 2 and warning.range.start.line == 8
        assert "no agent named 'implementer'" in warning.message

        result = await session.command("agentls.run", {"agent": "planner", "task": "the export"})
        assert result["status"] == "succeeded", result
        assert result["handoffs"] == expected
        dry = await session.command(
            "agentls.run", {"agent": "planner", "task": "it", "dry_run": True}
        )
        assert dry["handoffs"] == expected
        # an agent without handoffs says so with an empty list, never a missing field
        plain = await session.command("agentls.run", {"agent": "reviewer", "task": "look"})
        assert plain["handoffs"] == []
