"""Front-matter language features as a service: places, completion, hover, definition, symbols."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.agents import language
from agentls.agents.definition import KNOWN_KEYS
from agentls.agents.language import BackendInfo, Catalog

SOURCE = Path("/ws/.agents/a.md")
CATALOG = Catalog(
    backends={
        "local": BackendInfo("local", "openai", "qwen", "user"),
        "claude": BackendInfo("claude", "anthropic", "sonnet", "workspace"),
        "cli": BackendInfo("cli", "command", None, "workspace"),
    },
    default_backend="local",
)
TEXT = (
    "---\n"
    "name: a\n"  # 1
    "backend: claude\n"  # 2
    "include:\n"  # 3
    "  - sel\n"  # 4
    "tools: [Read, Gr]\n"  # 5
    "\n"  # 6
    "---\n"  # 7
    "backend: not front matter\n"  # 8
)


def labels(line: int, column: int, text: str = TEXT) -> list[str]:
    return [i.label for i in language.complete(text, line, column, CATALOG)]


def test_keys_offered_on_an_empty_line_are_the_unused_known_keys() -> None:
    offered = labels(6, 0)
    assert set(offered) == set(KNOWN_KEYS) - {"name", "backend", "include", "tools"}
    item = next(i for i in language.complete(TEXT, 6, 0, CATALOG) if i.label == "task")
    assert item.insert_text == "task: "
    assert "Default:" in item.documentation


def test_a_partial_key_filters_and_replaces_the_word() -> None:
    text = TEXT.replace("\n\n---", "\nmax\n---")
    items = language.complete(text, 6, 2, CATALOG)
    assert [i.label for i in items] == ["max_files", "max_context_tokens", "max_turns"]
    assert (items[0].start, items[0].end) == (0, 3)


@pytest.mark.parametrize(
    ("line", "column", "expected"),
    [
        pytest.param(2, 9, ["claude", "cli", "local"], id="backend-empty-prefix"),
        pytest.param(2, 11, ["claude", "cli"], id="backend-prefix"),
        pytest.param(4, 7, ["selection"], id="include-list-item"),
        pytest.param(5, 16, ["Grep"], id="tools-flow-list"),
    ],
)
def test_values_of_the_key_under_the_cursor(line: int, column: int, expected: list[str]) -> None:
    assert labels(line, column) == expected


def test_models_come_from_the_configured_backends() -> None:
    text = "---\nmodel: \n---\n"
    assert labels(1, 7, text) == ["qwen", "sonnet"]


def test_nothing_outside_the_front_matter() -> None:
    assert labels(8, 9) == []
    assert labels(0, 0) == []
    assert language.complete("no front matter\n", 0, 3, CATALOG) == []


def test_hover_on_a_key_shows_the_effective_value() -> None:
    text = "---\nbackend: claude\nmodel: opus\n---\n"
    backend = language.hover(text, SOURCE, 1, 2, CATALOG)
    assert backend is not None
    assert (
        "**backend**" in backend.markdown and "Effective: `claude` (anthropic)" in backend.markdown
    )
    model = language.hover(text, SOURCE, 2, 1, CATALOG)
    assert model is not None and "Effective: `opus` is the model sent" in model.markdown
    default = language.hover("---\nmodel: \n---\n", SOURCE, 1, 1, CATALOG)
    assert default is not None and "`qwen`" in default.markdown  # the default backend's model


def test_hover_on_values() -> None:
    known = language.hover(TEXT, SOURCE, 2, 11, CATALOG)
    assert known is not None and known.markdown.startswith("Backend `claude`: anthropic")
    assert (known.start, known.end) == (9, 15)
    unknown = language.hover("---\nbackend: nope\n---\n", SOURCE, 1, 10, CATALOG)
    assert unknown is not None and "not configured" in unknown.markdown
    output = language.hover("---\noutput: diagnostics\n---\n", SOURCE, 1, 10, CATALOG)
    assert output is not None and "Findings" in output.markdown


def test_backend_reference_and_its_table() -> None:
    assert language.backend_at(TEXT, 2, 12) == "claude"
    assert language.backend_at(TEXT, 1, 7) is None
    toml = 'x = 1\n[backends.local]\n[ backends . "claude" ]\n'
    assert language.backend_header_line(toml, "claude") == 2
    assert language.backend_header_line(toml, "local") == 1
    assert language.backend_header_line(toml, "loc") is None


def test_symbols_are_the_agent_and_its_keys() -> None:
    (agent,) = language.symbols(TEXT, SOURCE)
    assert agent.name == "a"
    assert [c.name for c in agent.children] == ["name", "backend", "include", "tools"]
    include = agent.children[2]
    assert (include.start, include.end) == ((3, 0), (4, 7))  # its list items belong to it
    assert include.selection_end == (3, 7)


def test_unclosed_front_matter_still_answers() -> None:
    text = "---\nbackend: \n"
    assert labels(1, 9, text) == ["claude", "cli", "local"]


CONFIG = 'default_backend = "cl"\n[backends.claude]\nkind = "an"\n[limits]\nkind = "\n'


def test_config_completion_of_backend_names_and_kinds() -> None:
    kinds = ("openai", "anthropic", "command")
    names = language.config_complete(CONFIG, 0, 20, CATALOG, kinds)
    assert [i.label for i in names] == ["claude", "cli"]
    assert (names[0].start, names[0].end) == (19, 21)  # the word inside the quotes
    assert [i.label for i in language.config_complete(CONFIG, 2, 10, CATALOG, kinds)] == [
        "anthropic"
    ]
    assert language.config_complete(CONFIG, 4, 8, CATALOG, kinds) == []  # not a backend table
    assert language.config_complete(CONFIG, 1, 3, CATALOG, kinds) == []


def test_config_default_backend_reference() -> None:
    text = 'default_backend = "claude"\n'
    assert language.config_backend_at(text, 0, 21) == "claude"
    assert language.config_backend_at(text, 0, 3) is None


def test_model_aliases_are_offered_and_resolved() -> None:
    catalog = Catalog(
        backends=CATALOG.backends,
        default_backend="local",
        model_aliases={"fast": "qwen-small"},
    )
    text = "---\nmodel: fast\n---\n"
    assert [i.label for i in language.complete(text, 1, 8, catalog)] == ["fast"]
    value = language.hover(text, SOURCE, 1, 9, catalog)
    assert value is not None and "`qwen-small` is sent" in value.markdown
    key = language.hover(text, SOURCE, 1, 1, catalog)
    assert key is not None and "Effective: `qwen-small` is the model sent" in key.markdown


def test_tool_names_come_from_the_tool_table() -> None:
    """Every name the tools module groups is offered, spelled as its tool spells it."""
    from agentls.agents.tools import TOOLS, group_of

    offered = dict(language.value_choices("tools", CATALOG))
    assert set(offered) == set(TOOLS)
    assert offered["runCommands"] == "execute tool" and offered["Grep"] == "search tool"
    assert all(group_of(name) == TOOLS[name] for name in offered)
