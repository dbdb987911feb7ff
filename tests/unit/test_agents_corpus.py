"""Real agent files from public repositories load and run the way their authors meant.

The corpus (``tests/corpus/agents``, origins and licences in ``SOURCES.json``) holds Claude Code
collections, Copilot agents and prompt files, and ordinary repositories whose ``.claude/agents``
is a symlink, each laid out in a workspace as its repository lays it out. Each workspace is
loaded by a real ``AgentService`` (registry, builder, dry runs) and compared with what Claude
Code or Copilot would make of the same files, read here by a deliberately simple reference.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentls.config import load_settings
from agentls.requests import parse_run
from agentls.service import AgentService, NoBuffers

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "agents"
SOURCES = json.loads((CORPUS / "SOURCES.json").read_text(encoding="utf-8"))
REAL = [ws for ws in SOURCES["workspaces"] if ws["repository"] is not None]
NOT_AGENTS = {"readme.md", "claude.md", "agents.md"}
LOCAL_MODEL = "local-model"
ANTHROPIC_MODEL = "claude-sonnet-4-5"


def test_the_corpus_is_what_the_brief_asks_for() -> None:
    """Five repositories or more, every file recorded with its origin, small enough to keep."""
    assert len({ws["repository"] for ws in REAL}) >= 5
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.parent != CORPUS and p.name != "LICENSE"
    }
    recorded = {f"{ws['slug']}/{f['path']}" for ws in SOURCES["workspaces"] for f in ws["files"]}
    assert on_disk == recorded
    for ws in REAL:
        assert re.fullmatch(r"[0-9a-f]{40}", ws["commit"]), ws["slug"]
        assert (CORPUS / ws["slug"] / "LICENSE").is_file()
        assert all(f["origin"] for f in ws["files"])
    assert sum(p.stat().st_size for p in CORPUS.rglob("*.md")) < 1_000_000


def _workspace(tmp_path: Path, ws: dict[str, Any]) -> Path:
    root = tmp_path / ws["slug"]
    shutil.copytree(CORPUS / ws["slug"], root)
    (root / "LICENSE").unlink(missing_ok=True)
    for link, target in ws.get("links", {}).items():
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
    return root


def _front_matter(text: str) -> dict[str, Any] | None:
    """What Claude Code and Copilot read: YAML, or ``key: value`` lines when YAML refuses it."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        close = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None
    front = "\n".join(lines[1:close])
    try:
        data = yaml.safe_load(front)
    except yaml.YAMLError:
        data = {}
        for line in lines[1:close]:
            key, sep, value = line.partition(": ")
            if sep and re.fullmatch(r"[A-Za-z_][\w-]*", key):
                data[key] = value.strip()
    return data if isinstance(data, dict) else {}


def _expected_name(path: Path, rel: str) -> str | None:
    """The agent name Claude Code / Copilot would give the file, or None if it is no agent."""
    if path.name.lower() in NOT_AGENTS:
        return None
    front = _front_matter(path.read_text(encoding="utf-8"))
    stem = path.name.removesuffix(".md").removesuffix(".agent").removesuffix(".prompt")
    if rel.startswith(".claude/agents/"):
        if not front or not front.get("description"):
            return None  # Claude Code needs front matter with a description (and a name)
        return str(front.get("name") or stem)
    if rel.startswith(".github/agents/") and not path.name.endswith(".agent.md") and front is None:
        return None
    name = front.get("name") if front else None  # prompt files may set `name` too
    return str(name) if name else stem


def _definition_files(root: Path) -> dict[str, Path]:
    """Every file under a definition location, by its path through links (the way tools see it)."""
    found: dict[str, Path] = {}
    for top in (".claude/agents", ".github/agents", ".github/prompts"):
        folder = root / top
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.md"):  # follows the symlinked location itself
            rel = path.relative_to(root).as_posix()
            if top != ".claude/agents" and path.parent != folder:
                continue
            if top == ".github/prompts" and not path.name.endswith(".prompt.md"):
                continue
            found[rel] = path
    return found


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[dict[str, tuple[Path, AgentService]]]:
    """One started service per corpus workspace, all on an OpenAI-compatible backend."""
    out: dict[str, tuple[Path, AgentService]] = {}
    options = {
        "default_backend": "local",
        "backends": {
            "local": {
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": LOCAL_MODEL,
                "models": [LOCAL_MODEL, "gpt-4.1"],
            }
        },
        "data_dir": str(tmp_path / "data"),
    }
    for ws in SOURCES["workspaces"]:
        root = _workspace(tmp_path, ws)
        settings = load_settings([root], options, user_file=tmp_path / "none.toml")
        service = AgentService(settings, [root], watch=False)
        await service.start()
        out[ws["slug"]] = (root, service)
    yield out
    for _, service in out.values():
        await service.shutdown()


@pytest.mark.parametrize("slug", [ws["slug"] for ws in REAL])
async def test_every_file_loads_the_way_its_tool_reads_it(
    services: dict[str, tuple[Path, AgentService]], slug: str
) -> None:
    root, service = services[slug]
    listed = {a["source"]: a for a in service.list_agents()["agents"]}
    files = _definition_files(root)
    expected = {rel: name for rel, path in files.items() if (name := _expected_name(path, rel))}
    assert expected, "a corpus workspace with no agents tests nothing"
    assert {rel: a["name"] for rel, a in listed.items()} == expected
    for rel, agent in listed.items():
        assert agent["valid"], (rel, agent["problems"])
        # no false error: nothing worse than a hint on a file its own tool loads
        assert all(": hint: " in p for p in agent["problems"]), (rel, agent["problems"])
        assert agent["model"] in (LOCAL_MODEL, "gpt-4.1"), (rel, agent["model"])
    # files that are no agent are never errors either: at most information saying why
    for path in service.registry.files():
        assert all(p.severity != "error" for p in service.registry.problems(path)), path


@pytest.mark.parametrize("slug", [ws["slug"] for ws in REAL])
async def test_dry_runs_give_the_body_as_system_prompt_and_the_task_once(
    services: dict[str, tuple[Path, AgentService]], slug: str
) -> None:
    _, service = services[slug]
    for i, agent in enumerate(service.list_agents()["agents"]):
        definition = service.registry.get(agent["name"])
        task = f"corpus task {i} for {agent['name']}"
        variables = {item["name"]: f"value-of-{item['name']}" for item in agent["inputs"]}
        result = await service.run(
            parse_run(
                {"agent": agent["name"], "task": task, "dry_run": True, "variables": variables}
            ),
            NoBuffers(),
        )
        assert result["status"] == "succeeded", agent["name"]
        prompt = result["prompt"]
        assert prompt.count(task) == 1, agent["name"]
        assert "${input:" not in prompt
        # the body is the system prompt: the prompt starts with it (front matter left out)
        body = definition.body.rstrip()
        if "${" not in body and "{{" not in body:
            assert prompt.startswith(body + "\n\n"), agent["name"]
        else:
            first = next(line for line in body.splitlines() if line.strip())
            if "${" not in first and "{{" not in first:
                assert prompt.lstrip().startswith(first.strip()), agent["name"]
        assert not prompt.startswith("---"), agent["name"]
        assert result["model"] in (LOCAL_MODEL, "gpt-4.1")


async def test_claude_aliases_map_on_an_anthropic_backend(tmp_path: Path) -> None:
    """The same Claude Code collection on Anthropic's API: aliases become Claude model ids."""
    ws = next(w for w in REAL if w["slug"] == "wshobson-agents")
    root = _workspace(tmp_path, ws)
    options = {
        "default_backend": "claude",
        "backends": {"claude": {"kind": "anthropic", "model": ANTHROPIC_MODEL}},
        "data_dir": str(tmp_path / "data"),
    }
    settings = load_settings([root], options, user_file=tmp_path / "none.toml")
    service = AgentService(settings, [root], watch=False)
    await service.start()
    try:
        agents = service.list_agents()["agents"]
        by_request = {a["model_requested"]: (a["model"], a["model_source"]) for a in agents}
        assert by_request["sonnet"] == ("claude-sonnet-4-5", "alias")
        assert by_request["haiku"] == ("claude-haiku-4-5", "alias")
        assert by_request[None] == (ANTHROPIC_MODEL, "backend")  # `inherit`
        assert all(a["model"].startswith("claude-") for a in agents)
    finally:
        await service.shutdown()


async def test_shapes_reproduced_by_hand(services: dict[str, tuple[Path, AgentService]]) -> None:
    root, service = services["handmade"]
    listed = {a["name"]: a for a in service.list_agents()["agents"]}
    assert sorted(listed) == [
        "Technical Writer",
        "explain",
        "indented",
        "mapped-tools",
        "planner",
        "reviewer",
    ]

    def problems(rel: str) -> list[tuple[str, int, str]]:
        return [(p.severity, p.line, p.message) for p in service.registry.problems(root / rel)]

    # notes, an empty file and front matter-less Copilot notes are not agents, and say why
    for rel in (".claude/agents/notes.md", ".claude/agents/empty.md", ".github/agents/notes.md"):
        ((severity, line, message),) = problems(rel)
        assert severity == "information" and line == 0 and message.startswith("not an agent")
    # indented front matter is an error at its line, never YAML in the prompt
    assert not listed["indented"]["valid"]
    ((severity, line, message),) = problems(".claude/agents/indented.md")
    assert (severity, line) == ("error", 0) and "indented" in message
    # one agent served to both tools: the Claude Code file runs, the Copilot copy gets a hint
    reviewer = listed["reviewer"]
    assert reviewer["source"] == ".claude/agents/review/reviewer.md" and reviewer["valid"]
    (hint,) = [p for p in problems(".github/agents/reviewer.agent.md") if "also defined" in p[2]]
    assert hint[0] == "hint" and ".claude/agents/review/reviewer.md" in hint[2]
    assert reviewer["tool_groups"] == ["read", "search", "execute"]
    # tools as a mapping: the enabled ones
    assert listed["mapped-tools"]["tools"] == ["read", "webfetch"]
    assert listed["mapped-tools"]["tool_groups"] == ["read", "web"]
    assert listed["mapped-tools"]["model_source"] == "backend"  # an Anthropic id on OpenAI
    # GitHub's tooling writes .github/agents/*.md; Copilot's display name is not sent
    assert listed["planner"]["model"] == "gpt-4.1"  # the listed spelling of Copilot's name
    assert listed["planner"]["model_requested"] == "GPT-4.1"
    planner = await service.run(
        parse_run(
            {"agent": "planner", "task": "t", "dry_run": True, "variables": {"feature": "export"}}
        ),
        NoBuffers(),
    )
    assert f"Write an implementation plan for export in {root.name}." in planner["prompt"]
    assert listed["explain"]["inputs"] == [{"name": "focus", "placeholder": ""}]
    # Copilot handoffs, as real files write them: every entry read, nothing worse than a hint
    writer = listed["Technical Writer"]
    assert writer["valid"] and all(": hint: " in p for p in writer["problems"]), writer
    assert writer["handoffs"] == [
        {
            "label": "Implement Documentation",
            "agent": "agent",
            "prompt": "Implement the documentation changes identified above.",
            "send": False,
        },
        {
            "label": "Review",
            "agent": "reviewer",
            "prompt": "Review the documentation changes above.",
            "send": True,
        },
        {"label": "Plan Next Steps", "agent": "planner", "prompt": "", "send": False},
    ]
    hints = {line: message for _, line, message in problems(".github/agents/tech-writer.agent.md")}
    assert "one of Copilot's built-in agents" in hints[6]  # `agent: agent`
    assert hints[13] == "handoff key 'model' is not one agentls reads; it is ignored"
    assert len(hints) == 2  # reviewer and planner are agents of this workspace
