"""Parsing one agent definition: values, defaults, and every problem at the line to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentls.agents.definition import (
    DEFINITION_GLOBS,
    AgentDefinition,
    Problem,
    check_glob,
    default_name,
    is_definition_path,
    parse_agent,
    parse_definition,
)

SOURCE = Path("/work/project/.agents/reviewer.md")


def parse_ok(text: str, source: Path = SOURCE) -> tuple[AgentDefinition, list[Problem]]:
    definition, problems = parse_agent(text, source)
    assert definition is not None, problems
    return definition, problems


def errors(text: str, source: Path = SOURCE) -> list[Problem]:
    definition, problems = parse_agent(text, source)
    assert definition is None, "expected the definition to be refused"
    found = [p for p in problems if p.severity == "error"]
    assert found
    return found


def test_full_definition_is_read_with_every_field() -> None:
    text = (
        "---\n"
        "name: reviewer\n"
        "description: Reviews code for bugs and risky changes\n"
        "backend: local\n"
        "model: qwen2.5-coder:7b\n"
        "context:\n"
        '  - "src/**/*.py"\n'
        '  - "!src/vendor/**"\n'
        "include: [selection, active_file, open_files]\n"
        "max_files: 200\n"
        "max_context_tokens: 60000\n"
        "timeout: 300\n"
        "output: diagnostics\n"
        "---\n"
        "You are a careful reviewer.\n"
        "The task: {{task}}\n"
    )
    d, problems = parse_ok(text)
    assert problems == []
    assert d.name == "reviewer"
    assert d.source == SOURCE
    assert d.description == "Reviews code for bugs and risky changes"
    assert d.backend == "local"
    assert d.model == "qwen2.5-coder:7b"
    assert d.context == ("src/**/*.py", "!src/vendor/**")
    assert d.include == ("selection", "active_file", "open_files")
    assert d.max_files == 200
    assert d.max_context_tokens == 60000
    assert d.timeout == 300.0 and isinstance(d.timeout, float)
    assert d.output == "diagnostics"
    assert d.body == "You are a careful reviewer.\nThe task: {{task}}\n"
    assert d.body_line == 14
    assert d.extra == {}


def test_without_front_matter_the_whole_text_is_the_body_and_the_stem_the_name() -> None:
    text = "You summarise things.\n---\nnot: front matter\n"
    d, problems = parse_ok(text)
    assert problems == []
    assert d.name == "reviewer"
    assert d.body == text
    assert d.body_line == 0
    assert d.backend is None and d.context == () and d.output == "markdown"


def test_empty_front_matter_and_null_values_take_the_defaults() -> None:
    d, _ = parse_ok("---\n---\nBody\n")
    assert (d.name, d.body, d.body_line) == ("reviewer", "Body\n", 2)
    d, problems = parse_ok("---\nname:\nbackend: ~\ncontext:\ntimeout: null\n---\nBody\n")
    assert problems == []
    assert d.name == "reviewer" and d.backend is None and d.context == () and d.timeout is None


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("reviewer.md", "reviewer"),
        ("security-audit.agent.md", "security-audit"),
        ("notes.v2.md", "notes.v2"),
    ],
)
def test_name_defaults_to_the_file_stem(filename: str, name: str) -> None:
    source = Path("/w/.github/agents") / filename
    assert default_name(source) == name
    d, _ = parse_ok("---\ndescription: x\n---\nBody\n", source)
    assert d.name == name


def test_a_single_string_context_is_accepted_and_include_is_deduplicated() -> None:
    d, problems = parse_ok(
        '---\ncontext: "docs/**/*.md"\ninclude: [selection, selection, open_files]\n---\n'
    )
    assert problems == []
    assert d.context == ("docs/**/*.md",)
    assert d.include == ("selection", "open_files")
    d, _ = parse_ok("---\ninclude: active_file\n---\n")
    assert d.include == ("active_file",)


def test_crlf_and_byte_order_mark_keep_positions_right() -> None:
    text = "\ufeff---\r\nname: a\r\nmax_files: 0\r\n---\r\nBody\r\n"
    (problem,) = errors(text)
    assert (problem.line, problem.column) == (2, 11)
    d, _ = parse_ok("\ufeff---\r\nname: a\r\n---\r\nBody\r\n")
    assert d.name == "a" and d.body == "Body\r\n" and d.body_line == 3


# Every error: the text, the 0-based line and column a user must fix, and words of the message.
ERROR_CASES = [
    pytest.param(
        "---\nname: x\ncontext: [a, b\n---\n", 3, 0, "YAML syntax error", id="yaml-syntax"
    ),
    pytest.param("---\nname: x\n  bad: indent\n---\n", 2, 5, "YAML syntax error", id="yaml-indent"),
    pytest.param("---\n- a\n- b\n---\n", 1, 0, "must be a mapping", id="not-a-mapping"),
    pytest.param("---\njust words\n---\n", 1, 0, "must be a mapping", id="scalar-front-matter"),
    pytest.param("---\nname: x\nBody without a close\n", 0, 0, "no closing '---'", id="unclosed"),
    pytest.param("---\nname: 42\n---\n", 1, 6, "name must be a string", id="name-number"),
    pytest.param("---\nname: yes\n---\n", 1, 6, "boolean", id="name-boolean"),
    pytest.param("---\nname: '  '\n---\n", 1, 6, "must not be empty", id="name-empty"),
    pytest.param('---\nname: "a\\tb"\n---\n', 1, 6, "one line", id="name-control"),
    pytest.param("---\ndescription: [a]\n---\n", 1, 13, "description must be a string", id="desc"),
    pytest.param("---\ndescription: 2024-01-01\n---\n", 1, 13, "a date", id="desc-date"),
    pytest.param("---\nbackend: 3\n---\n", 1, 9, "backend must be a string", id="backend"),
    pytest.param("---\nbackend: ''\n---\n", 1, 9, "must not be empty", id="backend-empty"),
    pytest.param("---\nmodel: {a: 1}\n---\n", 1, 7, "model must be a string", id="model"),
    pytest.param("---\nmodel: [gpt, 3]\n---\n", 1, 13, "model names must be strings", id="model-l"),
    pytest.param("---\ncontext: 5\n---\n", 1, 9, "context must be a list", id="context-type"),
    pytest.param("---\ncontext:\n  - a\n  - 7\n---\n", 3, 4, "each context entry", id="ctx-item"),
    pytest.param("---\ncontext: ['']\n---\n", 1, 10, "empty glob", id="glob-empty"),
    pytest.param("---\ncontext: ['!']\n---\n", 1, 10, "empty glob", id="glob-bang-only"),
    pytest.param("---\ncontext: [/etc/*]\n---\n", 1, 10, "absolute", id="glob-absolute"),
    pytest.param("---\ncontext: ['C:\\x\\*.py']\n---\n", 1, 10, "absolute", id="glob-drive"),
    pytest.param("---\ncontext: ['~/notes/*']\n---\n", 1, 10, "absolute", id="glob-home"),
    pytest.param("---\ncontext: [src/../../x]\n---\n", 1, 10, "'..'", id="glob-dotdot"),
    pytest.param("---\ncontext: ['!../secret']\n---\n", 1, 10, "'..'", id="glob-excl-dotdot"),
    pytest.param("---\ncontext: ['src/[z-a].py']\n---\n", 1, 10, "not a valid glob", id="glob-re"),
    pytest.param("---\ncontext: ['src\\']\n---\n", 1, 10, "not a valid glob", id="glob-escape"),
    pytest.param("---\ncontext: ['#notes']\n---\n", 1, 10, "matches nothing", id="glob-comment"),
    pytest.param("---\ncontext: ['!!x']\n---\n", 1, 10, "one leading '!'", id="glob-double-bang"),
    pytest.param("---\ninclude: [selection, clipboard]\n---\n", 1, 21, "clipboard", id="include"),
    pytest.param("---\ninclude: {a: 1}\n---\n", 1, 9, "include must be a list", id="include-type"),
    pytest.param("---\nmax_files: true\n---\n", 1, 11, "boolean", id="max-files-bool"),
    pytest.param("---\nmax_files: 0\n---\n", 1, 11, "positive whole number", id="max-files-0"),
    pytest.param("---\nmax_files: 2.5\n---\n", 1, 11, "positive whole number", id="max-files-f"),
    pytest.param("---\nmax_files: '10'\n---\n", 1, 11, "a string", id="max-files-str"),
    pytest.param("---\nmax_context_tokens: -5\n---\n", 1, 20, "not -5", id="max-tokens-neg"),
    pytest.param("---\ntimeout: 0\n---\n", 1, 9, "positive number", id="timeout-0"),
    pytest.param("---\ntimeout: -1.5\n---\n", 1, 9, "positive number", id="timeout-neg"),
    pytest.param("---\ntimeout: .inf\n---\n", 1, 9, "not inf", id="timeout-inf"),
    pytest.param("---\ntimeout: .nan\n---\n", 1, 9, "not nan", id="timeout-nan"),
    pytest.param("---\ntimeout: off\n---\n", 1, 9, "boolean", id="timeout-bool"),
    pytest.param("---\ntimeout: 30s\n---\n", 1, 9, "a string", id="timeout-str"),
    pytest.param("---\noutput: html\n---\n", 1, 8, "markdown, diagnostics, text", id="output"),
    pytest.param("---\noutput: 1\n---\n", 1, 8, "not one of", id="output-type"),
    pytest.param("---\nname: a\nname: b\n---\n", 2, 0, "duplicate key 'name'", id="dup-key"),
    pytest.param("---\n[a]: 1\n---\n", 1, 0, "plain names", id="key-not-string"),
    pytest.param("---\n1: one\n---\n", 1, 0, "plain names", id="key-number"),
    pytest.param("---\nx: !!python/object:os.system a\n---\n", 1, 3, "not allowed", id="tag"),
    pytest.param("---\nname: a\x00b\n---\n", 1, 7, "U+0000", id="nul-char"),
    pytest.param("---\nname: '\ud800'\n---\n", 1, 7, "U+D800", id="lone-surrogate"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), ERROR_CASES)
def test_each_error_is_placed_where_the_user_must_fix_it(
    text: str, line: int, column: int, words: str
) -> None:
    found = errors(text)
    assert any(words in p.message for p in found), [p.message for p in found]
    problem = next(p for p in found if words in p.message)
    assert (problem.line, problem.column) == (line, column), problem


def test_yaml_errors_are_shifted_past_the_opening_dashes_and_point_into_the_front_matter() -> None:
    text = "---\ndescription: |\n  line one\n  line two\nname: ok\nmax_files: [\n---\nBody\n"
    (problem,) = errors(text)
    lines = text.split("\n")
    assert 1 <= problem.line <= 6
    assert problem.end_line == problem.line
    assert problem.message.startswith("YAML syntax error")
    assert lines[problem.line] in ("max_files: [", "---")


def test_value_problems_cover_the_value_and_all_are_reported_at_once() -> None:
    text = "---\nname: x\nmax_files: -1\ncontext: [/abs, ok/*, ../up, 4]\noutput: pdf\n---\n"
    found = errors(text)
    assert [(p.line, p.column, p.end_column) for p in found] == [
        (2, 11, 13),
        (3, 10, 14),
        (3, 22, 27),
        (3, 29, 30),
        (4, 8, 11),
    ]


def test_positions_after_a_block_scalar_and_unicode_are_right() -> None:
    text = (
        "---\ndescription: >\n  Relecture soignée du code\n  en français\n"
        "näme: x\ntimeout: no\n---\n"
    )
    definition, problems = parse_agent(text, SOURCE)
    assert definition is None
    hint = next(p for p in problems if p.severity == "hint")
    error = next(p for p in problems if p.severity == "error")
    assert (hint.line, hint.column, hint.end_column) == (4, 0, 4)
    assert (error.line, error.column) == (5, 9)


def test_unknown_keys_are_hints_kept_in_extra_with_a_suggestion() -> None:
    text = "---\nname: r\nmaxFiles: 3\ntimout: 20\nfoo: [1, 2]\ncolor: blue\n---\nBody\n"
    d, problems = parse_ok(text)
    assert d.extra == {"maxFiles": 3, "timout": 20, "foo": [1, 2], "color": "blue"}
    assert d.max_files is None and d.timeout is None
    assert all(p.severity == "hint" for p in problems)
    by_line = {p.line: p.message for p in problems}
    assert "did you mean 'max_files'?" in by_line[2]
    assert "did you mean 'timeout'?" in by_line[3]
    assert "unknown key 'foo'" in by_line[4] and "did you mean" not in by_line[4]
    assert "another tool's agent format" in by_line[5]


def test_merge_keys_and_anchors_work_like_plain_yaml() -> None:
    text = "---\nbase: &b\n  max_files: 9\n  timeout: 5\n<<: *b\nname: merged\n---\n"
    d, _ = parse_ok(text)
    assert d.name == "merged" and d.max_files == 9 and d.timeout == 5.0


def test_tools_from_a_comma_separated_string_keep_parenthesised_commas() -> None:
    d, _ = parse_ok("---\ntools: Read, Grep,  Agent(worker, researcher), Bash(git diff:*)\n---\n")
    assert d.tools == ("Read", "Grep", "Agent(worker, researcher)", "Bash(git diff:*)")
    d, _ = parse_ok("---\ntools: ['codebase', 'search/usages']\n---\n")
    assert d.tools == ("codebase", "search/usages")


def test_model_inherit_means_no_override_and_a_list_uses_its_first_entry() -> None:
    d, _ = parse_ok("---\nmodel: inherit\n---\n")
    assert d.model is None
    d, _ = parse_ok("---\nmodel: ['GPT-5 (copilot)', 'Claude Sonnet 4.5 (copilot)']\n---\n")
    assert d.model == "GPT-5 (copilot)"
    d, _ = parse_ok("---\nmodel: []\n---\n")
    assert d.model is None


def test_a_broken_file_still_yields_its_name_for_the_registry() -> None:
    result = parse_definition("---\nname: custom\ntimeout: -1\n---\n", SOURCE)
    assert result.definition is None and result.name == "custom" and result.name_known
    assert result.spans["name"].line == 1
    result = parse_definition("---\nname: custom\ncontext: [\n---\n", SOURCE)
    assert result.name == "reviewer" and not result.name_known
    result = parse_definition("---\nname: 5\n---\n", SOURCE)
    assert result.name == "reviewer" and not result.name_known


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (".agents/reviewer.md", True),
        (".agents/team/deep/reviewer.md", True),
        (".agents/.draft.md", False),
        (".agents/.#reviewer.md", False),
        (".agents/.hidden/reviewer.md", False),
        (".agents/reviewer.txt", False),
        (".agents/.md", False),
        (".agents", False),
        (".claude/agents/reviewer.md", True),
        (".claude/agents/sub/reviewer.md", True),
        (".claude/agents/.hidden/reviewer.md", False),
        (".claude/agents/README.md", False),
        (".claude/agents/sub/CLAUDE.md", False),
        (".agents/AGENTS.md", False),
        (".github/prompts/fix.prompt.md", True),
        (".github/prompts/fix.md", False),
        (".github/prompts/x/fix.prompt.md", False),
        (".claude/reviewer.md", False),
        (".github/agents/reviewer.agent.md", True),
        (".github/agents/reviewer.md", True),
        (".github/agents/.agent.md", False),
        (".github/agents/x/reviewer.agent.md", False),
        ("docs/.agents/reviewer.md", False),
        ("src/reviewer.md", False),
        ("../.agents/reviewer.md", False),
        (".agents/../x.md", False),
        ("/.agents/x.md", False),
        (".agents\\x.md", False),
    ],
)
def test_definition_paths_follow_the_globs(rel: str, expected: bool) -> None:
    assert is_definition_path(rel) is expected


def test_the_globs_are_the_documented_four() -> None:
    assert DEFINITION_GLOBS == (
        ".agents/**/*.md",
        ".claude/agents/**/*.md",
        ".github/agents/*.md",
        ".github/prompts/*.prompt.md",
    )


@pytest.mark.parametrize(
    "pattern", ["src/**/*.py", "!src/vendor/**", "*.md", "docs/", "a b/c", "[abc].txt", "**"]
)
def test_ordinary_globs_pass(pattern: str) -> None:
    assert check_glob(pattern) is None


FRONT_MATTER_CHARS = st.sampled_from([*"abc:-[]{}!&*|>'\"#,?% \t\n\r", "\u2028", "é", "\x85"])


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(FRONT_MATTER_CHARS, max_size=120).map(lambda s: f"---\n{s}\n---\nBody\n"),
        st.text(FRONT_MATTER_CHARS, max_size=120).map(lambda s: f"---\nname: x\n{s}"),
    )
)
def test_parsing_never_raises_and_positions_stay_inside_the_file(text: str) -> None:
    result = parse_definition(text, SOURCE)
    definition, problems = result.definition, result.problems
    refused = any(p.severity == "error" for p in problems) or result.not_agent is not None
    assert (definition is None) == refused
    line_count = text.count("\n") + text.count("\r") + 1
    for problem in problems:
        assert 0 <= problem.line <= line_count
        assert problem.column >= 0
