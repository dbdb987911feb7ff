"""Other tools' agent files (Claude Code, GitHub Copilot) load as agents, their keys as hints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentls.agents.registry import AgentRegistry

CLAUDE_REVIEWER = """\
---
name: code-reviewer
description: Expert code review specialist. Proactively reviews code for quality, security, \
and maintainability. Use immediately after writing or modifying code.
tools: Read, Grep, Glob, Bash
model: inherit
color: purple
---

You are a senior code reviewer ensuring high standards of code quality and security.

When invoked:
1. Run git diff to see recent changes
2. Focus on modified files
3. Begin review immediately

Provide feedback organized by priority: critical issues, warnings, suggestions.
"""

CLAUDE_DEBUGGER = """\
---
name: debugger
description: "Use this agent when a test fails or an error appears.\\n\\n<example>\\nContext: \
the user ran the suite and it failed.\\nuser: \\"the cart tests fail\\"\\nassistant: \\"I'll use \
the debugger agent to find the root cause.\\"\\n</example>"
tools: Read, Edit, Bash(npm test:*), Agent(worker, researcher)
model: sonnet
permissionMode: acceptEdits
maxTurns: 20
skills:
  - api-conventions
---
You are an expert debugger specializing in root cause analysis.
Capture the error message and stack trace, isolate the failure, implement a minimal fix.
"""

COPILOT_ARCHITECT = """\
---
description: 'Your role is that of an API architect. Help mentor the engineer by providing \
guidance, support, and working code.'
name: 'API Architect'
tools: ['codebase', 'edit/editFiles', 'search', 'fetch']
model: 'Claude Sonnet 4.5'
argument-hint: 'Describe the API you want to design'
target: vscode
handoffs:
  - label: Start Implementation
    agent: implementation
    prompt: Now implement the plan outlined above.
    send: false
---
# API Architect mode instructions

Your primary goal is to act on the mandatory and optional API aspects outlined below.
"""

COPILOT_PLANNER = """\
---
description: Generate an implementation plan for new features or refactoring existing code.
tools: [search, fetch, githubRepo, usages]
model: ['GPT-5 (copilot)', 'Claude Sonnet 4.5 (copilot)']
user-invocable: true
disable-model-invocation: true
mcp-servers:
  github:
    type: local
    command: github-mcp-server
---
# Planning instructions
You are in planning mode. Don't make any code edits, just generate a plan.
"""

AGENTLS_REVIEWER = """\
---
name: reviewer
description: Reviews code for bugs and risky changes
backend: local
context:
  - "src/**/*.py"
  - "!src/vendor/**"
include: [selection, active_file, open_files]
max_files: 200
max_context_tokens: 60000
timeout: 300
output: markdown
---
You are a careful reviewer of {{workspace}}. The task: {{task}}
"""


@pytest.fixture
def registry(tmp_path: Path) -> tuple[AgentRegistry, Path]:
    root = Path(os.path.realpath(tmp_path))
    files = {
        ".claude/agents/code-reviewer.md": CLAUDE_REVIEWER,
        ".claude/agents/debugger.md": CLAUDE_DEBUGGER,
        ".github/agents/api-architect.agent.md": COPILOT_ARCHITECT,
        ".github/agents/planner.agent.md": COPILOT_PLANNER,
        ".agents/reviewer.md": AGENTLS_REVIEWER,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    reg = AgentRegistry()
    reg.load_folder(root)
    reg.set_backends(["local"], "local")
    return reg, root


def test_every_format_loads_as_a_runnable_agent(registry: tuple[AgentRegistry, Path]) -> None:
    reg, _ = registry
    entries = {e.name: e for e in reg.agents()}
    assert set(entries) == {"API Architect", "code-reviewer", "debugger", "planner", "reviewer"}
    assert all(e.valid for e in entries.values()), {n: e.problems for n, e in entries.items()}
    for entry in entries.values():
        # hints only, but for the architect's handoff to an agent this workspace lacks
        milder = [p for p in entry.problems if p.severity != "hint"]
        assert [(entry.name, p.severity) for p in milder] in (
            [],
            [("API Architect", "warning")],
        ), milder


def test_claude_code_keys(registry: tuple[AgentRegistry, Path]) -> None:
    reg, root = registry
    reviewer = reg.get("code-reviewer")
    assert reviewer.description.startswith("Expert code review specialist.")
    assert reviewer.tools == ("Read", "Grep", "Glob", "Bash")
    assert reviewer.model is None  # "inherit": the backend's own model
    assert reviewer.backend is None  # the default backend
    assert reviewer.extra == {"color": "purple"}
    assert reviewer.body.startswith("\nYou are a senior code reviewer")
    tools_hint, hint = reg.problems(root / ".claude/agents/code-reviewer.md")
    assert hint.line == 5 and "'color' belongs to another tool's agent format" in hint.message
    # Bash is read (group execute) but never granted: said on the tools line
    assert tools_hint.line == 3 and "agentls has no execute tools" in tools_hint.message

    debugger = reg.get("debugger")
    assert "<example>" in debugger.description
    assert debugger.tools == ("Read", "Edit", "Bash(npm test:*)", "Agent(worker, researcher)")
    assert debugger.model == "sonnet"
    assert debugger.extra == {"permissionMode": "acceptEdits", "skills": ["api-conventions"]}
    assert debugger.max_turns == 20  # Claude Code's maxTurns is agentls' max_turns
    hints = {p.line: p.message for p in reg.problems(root / ".claude/agents/debugger.md")}
    assert debugger.tool_groups == ("read", "edit", "execute", "agent")
    # the model is mapped by the configuration, not by the file (test_agents_models.py)
    assert set(hints) == {3, 5, 7}  # tools (execute, agent not offered), permissionMode, skills
    assert "agentls has no execute, agent tools" in hints[3]


def test_copilot_keys(registry: tuple[AgentRegistry, Path]) -> None:
    reg, root = registry
    architect = reg.get("API Architect")
    assert architect.source == root / ".github/agents/api-architect.agent.md"
    assert architect.tools == ("codebase", "edit/editFiles", "search", "fetch")
    assert architect.model == "Claude Sonnet 4.5"
    assert [h.to_dict() for h in architect.handoffs] == [
        {
            "label": "Start Implementation",
            "agent": "implementation",
            "prompt": "Now implement the plan outlined above.",
            "send": False,
        }
    ]
    assert "handoffs" not in architect.extra  # read, not kept as another tool's key
    assert architect.body.startswith("# API Architect mode instructions")
    assert architect.tool_groups == ("search", "edit", "web")
    problems = {p.line: p for p in reg.problems(architect.source)}
    assert set(problems) == {3, 5, 6, 9}  # tools (fetch: web), argument-hint, target, handoff
    assert problems[9].severity == "warning"  # at the handoff's `agent: implementation`
    assert problems[9].message == (
        "handoff 'Start Implementation': no agent named 'implementation' in this workspace"
    )

    planner = reg.get("planner")  # no name: the stem without ".agent"
    assert planner.model == "GPT-5 (copilot)"
    assert planner.extra["mcp-servers"]["github"]["command"] == "github-mcp-server"
    assert planner.extra["disable-model-invocation"] is True


def test_own_format_has_no_hints(registry: tuple[AgentRegistry, Path]) -> None:
    reg, root = registry
    assert reg.problems(root / ".agents/reviewer.md") == []
    reviewer = reg.get("reviewer")
    assert reviewer.context == ("src/**/*.py", "!src/vendor/**")
    assert reviewer.max_context_tokens == 60000


def test_listing_shows_other_formats_like_our_own(registry: tuple[AgentRegistry, Path]) -> None:
    reg, root = registry
    listed = [e.to_dict(lambda p: p.relative_to(root).as_posix()) for e in reg.agents()]
    architect = next(d for d in listed if d["name"] == "API Architect")
    assert architect["source"] == ".github/agents/api-architect.agent.md"
    assert architect["valid"] is True
    assert architect["model"] == "Claude Sonnet 4.5"
    assert all(
        text.startswith("line ") and (": hint: " in text or ": warning: handoff " in text)
        for text in architect["problems"]
    )
    assert architect["handoffs"] == [
        {
            "label": "Start Implementation",
            "agent": "implementation",
            "prompt": "Now implement the plan outlined above.",
            "send": False,
        }
    ]
