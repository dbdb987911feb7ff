"""The rules that make real agent files load: lenient YAML, non-agents, keys, tools, duplicates,
symlinked folders. Each test names the rule it guards; docs/agents.md describes them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentls.agents.definition import parse_definition
from agentls.agents.registry import AgentRegistry
from agentls.agents.tools import group_of, read_tools, split_tools, tool_groups

CLAUDE = Path("/w/.claude/agents/helper.md")
COPILOT = Path("/w/.github/agents/helper.agent.md")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def agent(name: str, description: str = "d", extra: str = "") -> str:
    return f"---\nname: {name}\ndescription: {description}\n{extra}---\nYou are {name}.\n"


# -- lenient YAML ---------------------------------------------------------------------------


def test_a_colon_in_a_one_line_description_is_read_as_claude_code_reads_it() -> None:
    text = (
        "---\nname: a\ndescription: Use when: tests fail. Triggers on: x\nmodel: sonnet\n---\nB\n"
    )
    result = parse_definition(text, CLAUDE)
    assert result.definition is not None
    assert result.definition.description == "Use when: tests fail. Triggers on: x"
    assert result.definition.model == "sonnet"
    (hint,) = result.problems
    assert hint.severity == "hint" and "quote this value" in hint.message
    assert (hint.line, hint.column, hint.end_column) == (2, 13, 49)


def test_values_strict_yaml_reads_well_are_never_rewritten() -> None:
    text = '---\nname: a\ndescription: "Use when: quoted"\ntitle: plain text\n---\nB\n'
    result = parse_definition(text, Path("/w/.agents/a.md"))
    assert result.definition is not None
    assert result.definition.description == "Use when: quoted"
    assert [p.message for p in result.problems if "quote" in p.message] == []


@pytest.mark.parametrize(
    "front",
    [
        "name: a\ndescription: [unclosed: x",  # flow value: not retried
        "name: a\ndescription: Use when: x\n  continued: here",  # continuation line
        "name: a\ndescription: Use when: x\nbroken: [",  # a second, real error
    ],
)
def test_files_broken_for_claude_code_too_stay_errors(front: str) -> None:
    result = parse_definition(f"---\n{front}\n---\nB\n", CLAUDE)
    assert result.definition is None
    assert any(p.severity == "error" and "YAML" in p.message for p in result.problems)


def test_a_reserved_first_character_is_quoted_too() -> None:
    result = parse_definition("---\nname: a\ndescription: @mention the reviewer\n---\nB\n", CLAUDE)
    assert result.definition is not None
    assert result.definition.description == "@mention the reviewer"


# -- not agents -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   \n\n", "empty"),
        ("# Notes about our agents\n", "no front matter"),
        ("---\nname: a\n---\nBody\n", "no `description`"),
    ],
)
def test_files_in_claude_agents_that_claude_code_would_not_load(text: str, why: str) -> None:
    result = parse_definition(text, CLAUDE)
    assert result.definition is None and result.not_agent is not None
    (info,) = result.problems
    assert info.severity == "information" and why in info.message


def test_a_plain_md_in_github_agents_needs_front_matter_but_an_agent_md_does_not() -> None:
    assert parse_definition("Notes\n", Path("/w/.github/agents/notes.md")).not_agent
    result = parse_definition("You plan.\n", COPILOT)
    assert result.definition is not None and result.definition.body == "You plan.\n"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("  ---\n  name: a\n  description: d\n  ---\nBody\n", 0, 2),
        ("\n\n---\nname: a\ndescription: d\n---\nBody\n", 2, 0),
    ],
)
def test_indented_front_matter_is_an_error_at_its_line(text: str, line: int, column: int) -> None:
    for source in (CLAUDE, Path("/w/.agents/a.md")):
        result = parse_definition(text, source)
        assert result.definition is None
        (error,) = result.problems
        assert (error.severity, error.line, error.column) == ("error", line, column)
        assert "front matter" in error.message


def test_readme_claude_and_agents_md_are_never_agents(tmp_path: Path) -> None:
    for rel in (
        ".claude/agents/README.md",
        ".claude/agents/team/CLAUDE.md",
        ".agents/AGENTS.md",
        ".github/agents/readme.md",
    ):
        write(tmp_path, rel, agent("x"))
    reg = AgentRegistry()
    reg.load_folder(tmp_path)
    assert reg.files() == [] and reg.agents() == []


def test_non_agents_get_diagnostics_but_are_not_listed(tmp_path: Path) -> None:
    notes = write(tmp_path, ".claude/agents/notes.md", "Just notes\n")
    write(tmp_path, ".claude/agents/notes-too.md", agent("notes"))  # same stem, a real agent
    reg = AgentRegistry()
    assert reg.load_folder(tmp_path) == {notes}
    assert [e.name for e in reg.agents()] == ["notes"]
    assert reg.problems(notes)[0].severity == "information"
    assert notes in reg.files()


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["mode", "agent", "title", "hidden", "effort", "background", "isolation", "thinking"],
)
def test_other_tools_keys_are_known_and_never_did_you_mean(key: str) -> None:
    result = parse_definition(f"---\ndescription: d\n{key}: x\n---\nB\n", COPILOT)
    (hint,) = result.problems
    assert hint.severity == "hint" and "belongs to another tool's agent format" in hint.message
    assert "did you mean" not in hint.message


def test_typos_of_our_own_keys_still_get_a_suggestion() -> None:
    (hint,) = parse_definition("---\nmodle: x\n---\nB\n", Path("/w/.agents/a.md")).problems
    assert "did you mean 'model'?" in hint.message


# -- tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "names", "groups"),
    [
        ("Read, Grep, Glob, LS", ("Read", "Grep", "Glob", "LS"), ("read", "search")),
        (
            "Edit, MultiEdit, Write, NotebookEdit, Bash(npm test:*), Agent(a, b), Task",
            (
                "Edit",
                "MultiEdit",
                "Write",
                "NotebookEdit",
                "Bash(npm test:*)",
                "Agent(a, b)",
                "Task",
            ),
            ("edit", "execute", "agent"),
        ),
        (
            ["WebFetch", "WebSearch", "TodoWrite"],
            ("WebFetch", "WebSearch", "TodoWrite"),
            ("web", "todo"),
        ),
        (
            ["codebase", "editFiles", "runInTerminal", "fetch", "search/usages", "github/*"],
            ("codebase", "editFiles", "runInTerminal", "fetch", "search/usages", "github/*"),
            ("search", "edit", "execute", "web", "mcp"),
        ),
        (
            ["read", "execute", "agent", "todo", "mcp__jira__create"],
            None,
            ("read", "execute", "agent", "todo", "mcp"),
        ),
        ({"read": True, "bash": False, "webfetch": True}, ("read", "webfetch"), ("read", "web")),
        (["vscode/extensions", "vscode/runCommands", "think"], None, ("execute",)),
    ],
)
def test_tools_of_any_shape_map_to_canonical_groups(
    value: object, names: tuple[str, ...] | None, groups: tuple[str, ...]
) -> None:
    read, why = read_tools(value)
    assert why is None
    if names is not None:
        assert read == names
    assert tool_groups(read) == groups


@pytest.mark.parametrize("value", ["7", "true", "[Read, 3]"])
def test_a_tools_shape_that_cannot_be_read_is_a_hint_never_an_error(value: str) -> None:
    result = parse_definition(f"---\ndescription: d\ntools: {value}\n---\nB\n", CLAUDE)
    assert result.definition is not None
    (hint,) = result.problems
    assert hint.severity == "hint" and hint.message.startswith("tools:")


def test_unknown_tool_names_have_no_group() -> None:
    assert group_of("SomethingNew") is None
    assert group_of("github/get_issue") == "mcp"


# -- one agent for two tools ------------------------------------------------------------------


def test_the_same_agent_for_claude_code_and_copilot_is_one_agent(tmp_path: Path) -> None:
    claude = write(tmp_path, ".claude/agents/reviewer.md", agent("reviewer"))
    copilot = write(tmp_path, ".github/agents/reviewer.agent.md", agent("reviewer"))
    prompt = write(tmp_path, ".github/prompts/reviewer.prompt.md", "---\ndescription: d\n---\nB\n")
    reg = AgentRegistry()
    assert reg.load_folder(tmp_path) == {copilot, prompt}
    (entry,) = reg.agents()
    assert entry.source == claude and entry.valid
    assert reg.get("reviewer").source == claude
    for shadowed in (copilot, prompt):
        (hint,) = reg.problems(shadowed)
        assert hint.severity == "hint" and ".claude/agents/reviewer.md" in hint.message
    # the Claude Code file goes away: the Copilot one serves the agent, without a hint
    claude.unlink()
    assert reg.update(claude, None) == {copilot, prompt}  # the prompt file's hint names another
    assert reg.get("reviewer").source == copilot
    assert reg.problems(copilot) == []


def test_agentls_own_format_wins_over_other_tools(tmp_path: Path) -> None:
    own = write(tmp_path, ".agents/reviewer.md", agent("reviewer"))
    write(tmp_path, ".claude/agents/reviewer.md", agent("reviewer"))
    reg = AgentRegistry()
    reg.load_folder(tmp_path)
    assert reg.get("reviewer").source == own


def test_a_duplicate_within_one_format_stays_an_error(tmp_path: Path) -> None:
    write(tmp_path, ".claude/agents/a/reviewer.md", agent("reviewer"))
    second = write(tmp_path, ".claude/agents/b/reviewer.md", agent("reviewer"))
    reg = AgentRegistry()
    assert reg.load_folder(tmp_path) == {second}
    (error,) = reg.problems(second)
    assert error.severity == "error" and "already named 'reviewer'" in error.message


# -- symlinked folders ------------------------------------------------------------------------


def test_symlinked_locations_inside_the_folder_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, "plugins/core/agents/reviewer.md", agent("reviewer"))
    write(root, "plugins/core/agents/testing/tester.md", agent("tester"))
    write(root, "shared/copilot/planner.agent.md", agent("planner"))
    (root / ".claude").mkdir()
    (root / ".claude/agents").symlink_to("../plugins/core/agents")
    (root / ".github").symlink_to("shared")  # the link is an ancestor of the location
    (root / "shared/agents").symlink_to("copilot")
    reg = AgentRegistry()
    assert reg.load_folder(root) == set()
    assert {e.name: e.source.relative_to(root).as_posix() for e in reg.agents()} == {
        "reviewer": ".claude/agents/reviewer.md",
        "tester": ".claude/agents/testing/tester.md",
        "planner": ".github/agents/planner.agent.md",
    }
    assert reg.skipped_links() == []
    assert reg.follows(root / "plugins/core/agents/new.md")
    assert not reg.follows(root / "src/app.py")


def test_a_new_file_in_a_followed_folder_is_found_through_the_link(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, "agents/a.md", agent("a"))
    (root / ".claude").mkdir()
    (root / ".claude/agents").symlink_to("../agents")
    reg = AgentRegistry()
    reg.load_folder(root)
    new = write(root, "agents/sub/b.md", agent("b"))
    reg.update(new, None)  # the watcher reports the real path
    assert sorted(e.name for e in reg.agents()) == ["a", "b"]
    assert reg.get("b").source == root / ".claude/agents/sub/b.md"
    # an edit reported by the real path updates the entry known by the link's path
    write(root, "agents/a.md", agent("a", description="changed"))
    reg.update(root / "agents/a.md", None)
    assert reg.get("a").description == "changed"


def test_links_out_of_the_folder_are_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    write(outside, "agents/far.md", agent("far"))
    write(outside, "x/agents/farther.md", agent("farther"))
    root.mkdir()
    (root / ".claude").symlink_to(outside)  # an ancestor of the location links out
    write(root, ".agents/own.md", agent("own"))
    (root / ".agents/team").symlink_to(outside / "x")  # a folder inside a location links out
    reg = AgentRegistry()
    with caplog.at_level(logging.WARNING, logger="agentls.agents.registry"):
        reg.load_folder(root)
    assert [e.name for e in reg.agents()] == ["own"]
    skipped = sorted(link.path.relative_to(root).as_posix() for _, link in reg.skipped_links())
    assert skipped == [".agents/team", ".claude"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped .claude:" in logged and "skipped .agents/team:" in logged
    assert str(outside) not in logged
    # a rescan does not log the same links again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentls.agents.registry"):
        reg.load_folder(root)
    assert caplog.records == []


def test_link_loops_are_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, ".claude/agents/team/a.md", agent("a"))
    (root / ".claude/agents/team/again").symlink_to("..")
    (root / ".claude/agents/self").symlink_to(".")
    reg = AgentRegistry()
    reg.load_folder(root)
    assert [e.name for e in reg.agents()] == ["a"]
    assert os.path.islink(root / ".claude/agents/self")


def _split_by_depth(value: str) -> tuple[str, ...]:
    """The reference: split on commas at parenthesis depth 0, one character at a time."""
    items, depth, current = [], 0, ""
    for char in value:
        depth += char == "("
        depth = max(0, depth - (char == ")"))
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return tuple(item for item in items if item)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab (),:*", max_size=40))
def test_the_fast_tools_split_agrees_with_the_character_walk(value: str) -> None:
    assert split_tools(value) == _split_by_depth(value)


async def test_a_storm_in_a_followed_folder_rescans_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.config import load_settings
    from agentls.service import AgentService

    root = tmp_path / "repo"
    write(root, "agents/a.md", agent("a"))
    (root / ".claude").mkdir()
    (root / ".claude/agents").symlink_to("../agents")
    settings = load_settings([root], {"data_dir": str(tmp_path / "data")}, user_file=tmp_path / "x")
    service = AgentService(settings, [root], watch=False)
    await service.start()
    try:
        loads: list[Path] = []
        real_load = service.registry.load_folder
        monkeypatch.setattr(
            service.registry, "load_folder", lambda f: loads.append(f) or real_load(f)
        )
        changed = {write(root, f"agents/n{i}.md", agent(f"n{i}")) for i in range(50)}
        changed |= {write(root, f"src/f{i}.py", "x = 1\n") for i in range(50)}
        service.files_changed(changed)
        assert loads == [root]
        assert len(service.list_agents()["agents"]) == 51
        service.files_changed({write(root, "src/other.py", "y = 2\n")})
        assert loads == [root]  # a change elsewhere does not rescan
    finally:
        await service.shutdown()


def test_a_hostile_deeply_nested_tree_is_walked_without_recursion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    root = tmp_path / "repo"
    deep = root / ".claude" / "agents"
    deep.mkdir(parents=True)
    # deeper than Python's recursion limit; built with relative paths to stay under PATH_MAX
    depth = sys.getrecursionlimit() + 50
    monkeypatch.chdir(deep)
    for _ in range(depth):
        os.mkdir("d")
        os.chdir("d")
    Path("bottom.md").write_text(agent("bottom"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    try:
        reg = AgentRegistry()
        reg.load_folder(root)
        assert [e.name for e in reg.agents()] == ["bottom"]
    finally:
        _remove_chain(deep)


def _remove_chain(top: Path) -> None:
    """Remove a chain of nested ``d`` folders bottom-up without recursion.

    pytest removes old temporary folders with a recursive walk, which this tree overflows: left
    behind, it makes every later session on the machine end with a RecursionError.
    """
    here = os.getcwd()
    os.chdir(top)
    depth = 0
    try:
        while os.path.isdir("d"):
            os.chdir("d")
            depth += 1
        for name in os.listdir("."):
            os.unlink(name)
        for _ in range(depth):
            os.chdir("..")
            os.rmdir("d")
    finally:
        os.chdir(here)


def test_a_rescan_parses_only_the_files_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.agents import registry as registry_module

    parsed: list[str] = []
    real_parse = registry_module.parse_definition

    def counting(text: str, source: Path, fmt: object = None) -> object:
        parsed.append(source.name)
        return real_parse(text, source, fmt)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_module, "parse_definition", counting)
    for i in range(5):
        write(tmp_path, f".claude/agents/a{i}.md", agent(f"a{i}"))
    reg = AgentRegistry()
    reg.load_folder(tmp_path)
    assert len(parsed) == 5
    parsed.clear()
    write(tmp_path, ".claude/agents/a2.md", agent("a2", description="changed"))
    reg.load_folder(tmp_path)
    assert parsed == ["a2.md"]
    assert reg.get("a2").description == "changed"
    # an editor buffer is parsed as it is; after it closes, the disk text counts again
    parsed.clear()
    reg.update(tmp_path / ".claude/agents/a3.md", agent("a3", description="unsaved"))
    reg.load_folder(tmp_path)
    assert reg.get("a3").description == "unsaved"
    reg.update(tmp_path / ".claude/agents/a3.md", None)
    assert reg.get("a3").description == "d"
    parsed.clear()
    reg.load_folder(tmp_path)
    assert parsed == []


def test_a_file_link_out_that_appears_later_is_named_like_at_start_up(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, ".claude/agents/a.md", agent("a"))
    outside = write(tmp_path / "elsewhere", "far.md", agent("far"))
    reg = AgentRegistry()
    reg.load_folder(root)
    link = root / ".claude/agents/far.md"
    link.symlink_to(outside)  # a `git pull` brings it; the watcher reports the link's path
    assert reg.update(link, None) == {link}
    (info,) = reg.problems(link)
    assert info.severity == "information" and "points outside the workspace folder" in info.message
    assert [e.name for e in reg.agents()] == ["a"]
