"""An agent definition: a Markdown file with YAML front matter whose body is the system prompt.

This module owns the definition format: how one file's text becomes a frozen ``AgentDefinition``
(``parse_agent``), and what is wrong with it. Where definition files live is
``agents.locations``; tool names are ``agents.tools``.
``Problem`` is one thing wrong with a file, positioned so the LSP layer can publish it as a
diagnostic. Parsing never raises on bad input: it returns problems. Reading files and knowing which
definitions exist belong to ``agents.registry``; the format for users is in ``docs/agents.md``.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pathspec
import yaml

from agentls.agents.handoffs import Handoff, read_handoffs
from agentls.agents.locations import (
    COPILOT_FORMATS,
    DEFINITION_GLOBS,
    Format,
    default_name,
    format_of,
    is_definition_path,
)
from agentls.agents.recipe import RecipeStep, read_steps
from agentls.agents.tools import OFFERED_GROUPS, read_tools, tool_groups
from agentls.agents.yaml_values import kind as _kind

__all__ = [
    "DEFINITION_GLOBS",
    "AgentDefinition",
    "ParseResult",
    "Problem",
    "Span",
    "default_name",
    "is_definition_path",
    "parse_agent",
    "parse_definition",
]

Severity = Literal["error", "warning", "information", "hint"]
IncludeKind = Literal["selection", "active_file", "open_files"]
INCLUDE_KINDS: tuple[str, ...] = ("selection", "active_file", "open_files")
OUTPUT_KINDS: tuple[str, ...] = ("markdown", "diagnostics", "text")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition file. Lines and columns are 0-based (LSP style)."""

    message: str
    line: int = 0
    column: int = 0
    end_line: int | None = None
    end_column: int | None = None
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        """The protocol form used in ``agentls.agents.list``."""
        return {
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class AgentDefinition:
    """A parsed agent. Optional limits are None when the file leaves them to the configuration."""

    name: str
    source: Path
    body: str
    """The system prompt template: the Markdown after the front matter."""
    description: str = ""
    backend: str | None = None
    model: str | None = None
    context: tuple[str, ...] = ()
    """Globs relative to the workspace folder; a leading ``!`` excludes."""
    include: tuple[str, ...] = ()
    """Editor state to attach: any of ``selection``, ``active_file``, ``open_files``."""
    max_files: int | None = None
    max_context_tokens: int | None = None
    timeout: float | None = None
    output: str = "markdown"
    tools: tuple[str, ...] | None = None
    """The tool names as the file gives them (any shape read to names); None when the file has no
    ``tools`` key (every tool group agentls offers), ``()`` for ``tools: []`` (none). See
    ``agentls.tools.toolbox.granted_groups``."""
    tool_groups: tuple[str, ...] = ()
    """``tools`` mapped to canonical groups (``agents.tools.GROUPS``); ``()`` without ``tools``."""
    max_turns: int | None = None
    """Model turns a tool-using run may take (``max_turns``, or Claude Code's ``maxTurns``); None
    leaves it to ``limits.max_turns``."""
    task: str = ""
    """The default task: what a run started from a code action or code lens asks for."""
    code_action: bool = True
    """Whether the agent is offered as a code action on workspace files."""
    handoffs: tuple[Handoff, ...] = ()
    """Copilot's next steps after a run (``agents.handoffs``): its readable entries, in order."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown front-matter keys, kept and reported as hints."""
    body_line: int = 0
    """0-based line where the body starts in the file."""
    format: Format = "agentls"
    """Whose format the file is in (``agents.locations``): decides which variables the body uses."""
    steps: tuple[RecipeStep, ...] = ()
    """A recipe's steps (``agents.recipe``); ``()`` for an agent. A recipe's body is notes."""
    continue_on_error: bool = False
    """Recipes: whether a failed step leaves the steps that do not need it running, and the
    recipe succeeding; by default the first failure stops the recipe."""

    @property
    def is_recipe(self) -> bool:
        """Whether this definition chains agents (``steps:``) rather than being one."""
        return bool(self.steps)

    @functools.cached_property
    def inputs(self) -> tuple[tuple[str, str], ...]:
        """Copilot's ``${input:name}`` / ``${input:name:placeholder}`` in the body, each name once.

        Computed when first asked for (a run, or the list), so loading never scans bodies.
        """
        if self.format not in COPILOT_FORMATS or "${input:" not in self.body:
            return ()
        found: dict[str, str] = {}
        for m in COPILOT_INPUT.finditer(self.body):
            name, placeholder = m.group(1), (m.group(2) or "").strip()
            if not found.get(name):
                found[name] = placeholder
        return tuple(found.items())


COPILOT_INPUT = re.compile(r"\$\{input:([A-Za-z_][\w.-]*)(?::([^}]*))?\}")
"""Copilot's ``${input:name}`` and ``${input:name:placeholder}``."""


KNOWN_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "backend",
    "model",
    "context",
    "include",
    "max_files",
    "max_context_tokens",
    "timeout",
    "output",
    "tools",
    "max_turns",
    "task",
    "code_action",
    "steps",
    "continue_on_error",
    "handoffs",
)
"""Front-matter keys agentls reads. Anything else is kept in ``extra`` and reported as a hint."""

KEY_ALIASES: dict[str, str] = {"maxTurns": "max_turns"}
"""Other formats' spellings of keys agentls reads (Claude Code's ``maxTurns``)."""

FOREIGN_KEYS: frozenset[str] = frozenset(
    {
        # Claude Code subagents (.claude/agents/*.md)
        "color",
        "disallowedTools",
        "permissionMode",
        "skills",
        "hooks",
        "mcpServers",
        "memory",
        "effort",
        "background",
        "isolation",
        "thinking",
        # GitHub Copilot / VS Code custom agents (.github/agents/*.agent.md)
        "argument-hint",
        "target",
        "infer",
        "mcp-servers",
        "agents",
        "user-invocable",
        "user-invokable",
        "disable-model-invocation",
        "metadata",
        "mode",
        "agent",
        "title",
        "hidden",
    }
)
"""Keys other tools define: still hints (agentls ignores them), worded not to read as typos."""

SPAN_KEYS: frozenset[str] = frozenset({"name", "backend", "model"})
"""Keys whose value spans a parse keeps for the registry's cross-file problems."""

_STR_TAG = "tag:yaml.org,2002:str"

INHERIT_MODEL = "inherit"
"""Claude Code's way of saying "no override"; read as no ``model`` at all."""

_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when present: faster, and it refuses nesting deeper than 1000 instead of recursing."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters YAML refuses (control characters, lone surrogates, U+FFFE/U+FFFF)."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Span:
    """Where a front-matter value sits in the file: 0-based lines, columns in code points."""

    line: int
    column: int
    end_line: int
    end_column: int

    def problem(self, message: str, severity: Severity = "error") -> Problem:
        """A problem covering this span."""
        return Problem(message, self.line, self.column, self.end_line, self.end_column, severity)


@dataclass(frozen=True)
class ParseResult:
    """Everything parsing one file yields, including what the registry needs when it is broken.

    ``name`` is always set (the file stem when the front matter could not be read), so a broken
    definition can still be listed and asked for by name. ``name_known`` says whether the name
    really came from a readable front matter (or a file without one); the registry only lets such
    names collide, so a file with a YAML error never makes a good file with its stem a "duplicate".
    ``spans`` maps the keys in ``SPAN_KEYS`` to the span of their value, and ``handoffs.<i>`` to
    the span of the i-th handoff's ``agent``, for problems found later (duplicate names, unknown
    backends, model hints, handoff targets).
    """

    name: str
    definition: AgentDefinition | None
    problems: tuple[Problem, ...]
    name_known: bool = True
    spans: Mapping[str, Span] = field(default_factory=dict)
    not_agent: str | None = None
    """Why this file is not an agent at all (no front matter in ``.claude/agents``, an empty
    file...): the registry then lists it nowhere and only shows this as information."""
    format: Format = "agentls"


def check_glob(pattern: str) -> str | None:
    """Why a ``context`` glob is unusable, or None when it is fine.

    The globs use gitignore syntax relative to a workspace folder, one leading ``!`` to exclude.
    Anything that could reach outside the folder is refused here, at parse time, so that the
    context builder never has to wonder whether ``../secrets`` or ``/etc/*`` was meant.
    """
    body = pattern[1:] if pattern.startswith("!") else pattern
    if not body.strip():
        return "an empty glob matches nothing"
    if "\x00" in body:
        return "a glob cannot contain a NUL character"
    if body.startswith(("/", "\\", "~")) or _DRIVE.match(body):
        return "globs are relative to the workspace folder; absolute paths are not allowed"
    if ".." in re.split(r"[/\\]", body):
        return "globs must stay inside the workspace folder; '..' is not allowed"
    try:
        spec = pathspec.GitIgnoreSpec.from_lines([body])
    except (ValueError, re.error) as e:
        return f"not a valid glob: {e}"
    include = spec.patterns[0].include if spec.patterns else None
    if include is None:
        return "this glob matches nothing (gitignore syntax reads a leading '#' as a comment)"
    if include is False:
        return "only one leading '!' is allowed"
    return None


def parse_agent(text: str, source: Path) -> tuple[AgentDefinition | None, list[Problem]]:
    """Parse one definition file. Never raises on bad input.

    Returns the definition (None when any problem is an error) and every problem found, each placed
    at the offending key or value so an editor can underline it.
    """
    result = parse_definition(text, source)
    return result.definition, list(result.problems)


def parse_definition(text: str, source: Path, fmt: Format | None = None) -> ParseResult:
    """Like ``parse_agent``, plus the name and value spans the registry needs. Never raises.

    ``fmt`` is the format of the location the file was found in (judged from the path when not
    given). Only the front matter is scanned: the body is sliced off, never split into lines.
    """
    fmt = fmt or format_of(source)
    stem = default_name(source)
    if text.startswith("\ufeff"):
        text = text[1:]
    opening = _OPENING.match(text)
    if opening is None:
        return _without_front_matter(text, source, stem, fmt)
    close = _CLOSING.search(text, opening.start(1)) if opening.group(1) else None
    if close is None:
        problem = Problem(
            "the front matter that starts here has no closing '---' line",
            0,
            0,
            0,
            opening.start(1),
        )
        return ParseResult(stem, None, (problem,), name_known=False, format=fmt)
    front = text[opening.end() : close.end(1)]
    body = text[close.end() :]
    breaks = front.count("\n") + front.count("\r") - front.count("\r\n")
    result = _FrontMatter(source, stem, fmt, shift=1).parse(front, body, body_line=breaks + 2)
    if fmt == "claude" and result.definition is not None and not result.definition.description:
        return _not_agent(
            result,
            "not an agent: it has no `description`. Claude Code loads a file in .claude/agents "
            "as an agent only with a name and a description",
        )
    return result


_OPENING = re.compile(r"---[^\S\r\n]*(\r\n|\r|\n|\Z)")
"""The opening line of a front matter (trailing spaces allowed), matched at the file's start."""

_CLOSING = re.compile(r"(\r\n|\r|\n)---[^\S\r\n]*(\r\n|\r|\n|\Z)")
"""A closing ``---`` line with the line break before it (only CR, LF, CRLF break lines)."""

_INDENTED_OPENING = re.compile(
    r"\A((?:[^\S\r\n]*(?:\r\n|\r|\n))*)([^\S\r\n]*)---[^\S\r\n]*(?:\r\n|\r|\n)"
)
"""A ``---`` line after blank lines or indentation: front matter no tool would read."""

_INDENTED_CLOSING = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*---[^\S\r\n]*(?:\r\n|\r|\n|\Z)")


def _without_front_matter(text: str, source: Path, stem: str, fmt: Format) -> ParseResult:
    """A file that does not start with ``---``: an agent whose whole text is the prompt, or not.

    Empty files are never agents. In ``.claude/agents``, and for a plain ``*.md`` in
    ``.github/agents``, the other tool reads only files with front matter, so neither does agentls.
    Front matter that is indented or follows blank lines is an error: its YAML would otherwise
    silently become part of the prompt.
    """
    if not text.strip():
        result = ParseResult(stem, None, (), name_known=False, format=fmt)
        return _not_agent(result, "not an agent: the file is empty")
    indented = _INDENTED_OPENING.match(text)
    if indented is not None and _INDENTED_CLOSING.search(text, indented.end() - 1):
        lead = indented.group(1)
        line = lead.count("\n") + lead.count("\r") - lead.count("\r\n")
        column = len(indented.group(2))
        where = "is indented" if column else "does not start on the first line"
        problem = Problem(
            f"this front matter {where}, so it is not read as front matter and its YAML would "
            "become part of the prompt; start the file with '---' at the beginning of the line",
            line,
            column,
            line,
            column + 3,
        )
        return ParseResult(stem, None, (problem,), name_known=False, format=fmt)
    plain_copilot = fmt == "copilot" and not source.name.endswith(".agent.md")
    if fmt == "claude" or plain_copilot:
        tool = "Claude Code" if fmt == "claude" else "GitHub Copilot"
        result = ParseResult(stem, None, (), name_known=False, format=fmt)
        return _not_agent(
            result,
            f"not an agent: it has no front matter. {tool} reads a file here as an agent only "
            "when it starts with a '---' front matter",
        )
    definition = AgentDefinition(name=stem, source=source, body=text, format=fmt)
    return ParseResult(stem, definition, (), format=fmt)


def _not_agent(result: ParseResult, reason: str) -> ParseResult:
    """The same file marked as no agent at all, with the reason as information at its top."""
    problems = (Problem(reason, 0, 0, 0, 3, "information"),)
    return ParseResult(
        result.name,
        None,
        problems,
        name_known=False,
        spans=result.spans,
        not_agent=reason,
        format=result.format,
    )


def _suggestion(key: str) -> str:
    """A "did you mean" tail for a key that looks like a misspelt known key."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).replace("-", "_").lower()
    if snake in FOREIGN_KEYS:  # never "did you mean 'model'" for Copilot's `mode`
        return ""
    if snake in KNOWN_KEYS:
        return f"; did you mean {snake!r}?"
    close = difflib.get_close_matches(snake, KNOWN_KEYS, n=1, cutoff=0.8)
    return f"; did you mean {close[0]!r}?" if close else ""


class _FrontMatter:
    """Reads one front matter: YAML nodes (for positions) turned into checked values."""

    def __init__(self, source: Path, stem: str, fmt: Format, *, shift: int) -> None:
        self.source = source
        self.stem = stem
        self.format: Format = fmt
        self.shift = shift
        """Lines before the YAML text in the file (the opening '---')."""
        self.line_starts: list[int] = [0]
        """Offsets where each line of the YAML text starts, by LSP's rules for line breaks."""
        self.problems: list[Problem] = []
        self.spans: dict[str, Span] = {}
        self.name_failed = False
        """Whether ``name`` was set but unusable; then the file's name is not really known."""
        self.loader: yaml.SafeLoader | None = None
        self.syntax_failed = False
        """Whether strict YAML could not read the text at all (the lenient retry may)."""

    def position(self, index: int) -> tuple[int, int]:
        """File line and column of a character offset in the YAML text.

        Computed from the offset rather than taken from the mark's line, because YAML also breaks
        lines at U+0085, U+2028 and U+2029, where an editor does not.
        """
        line = bisect.bisect_right(self.line_starts, index) - 1
        return line + self.shift, index - self.line_starts[line]

    def span(self, node: yaml.Node) -> Span:
        """The file span of a YAML node."""
        return Span(*self.position(node.start_mark.index), *self.position(node.end_mark.index))

    def point(self, index: int, message: str) -> ParseResult:
        """A failed parse with one problem on the character at ``index``."""
        line, column = self.position(index)
        return self._failure(Problem(message, line, column, line, column + 1))

    def error(self, node: yaml.Node, message: str) -> None:
        """Record an error on a node."""
        self.problems.append(self.span(node).problem(message))

    def construct(self, node: yaml.Node) -> Any:
        """The Python value of a node (the loader caches it, so aliases stay shared).

        A plain string scalar, most of any front matter, is its own value: taken directly, as
        the loader's string constructor would, without its dispatch.
        """
        if type(node) is yaml.ScalarNode and node.tag == _STR_TAG:
            return node.value
        assert self.loader is not None
        return self.loader.construct_object(node, deep=True)

    def parse(self, front: str, body: str, *, body_line: int) -> ParseResult:
        """Parse strictly; when that fails on syntax, retry the way Claude Code reads the file.

        Claude Code reads ``description: Use when: the tests fail`` although strict YAML takes the
        second ``': '`` for a nested mapping. When strict parsing fails, plain single-line values
        that strict YAML misreads are quoted and the text parsed again; if that works the agent is
        valid, with a hint on each value that needed it.
        """
        quoted, lines = _quote_plain_values(front)
        if not lines:
            return self._strict(front, body, body_line=body_line)
        # A top-level plain value with ': ' inside is always a strict YAML error, so the quoted
        # text is tried first: one parse for such files instead of two.
        retry = _FrontMatter(self.source, self.stem, self.format, shift=self.shift)
        relaxed = retry._strict(quoted, body, body_line=body_line)
        if retry.syntax_failed:
            return self._strict(front, body, body_line=body_line)
        hints = tuple(
            Problem(
                "quote this value; strict YAML reads ': ' as a mapping (Claude Code reads it as "
                "text, and so does agentls)",
                line + self.shift,
                column,
                line + self.shift,
                end,
                "hint",
            )
            for line, column, end in lines
        )
        problems = tuple(sorted(relaxed.problems + hints, key=lambda p: (p.line, p.column)))
        return ParseResult(
            relaxed.name,
            relaxed.definition,
            problems,
            name_known=relaxed.name_known,
            spans=relaxed.spans,
            format=self.format,
        )

    def _strict(self, front: str, body: str, *, body_line: int) -> ParseResult:
        """Compose, check, build. YAML and structure errors end early; value errors accumulate."""
        self.line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(front)]
        bad = _NOT_YAML.search(front)
        if bad is not None:
            return self.point(
                bad.start(),
                f"U+{ord(bad.group()):04X} is a character YAML does not allow",
            )
        try:
            self.loader = _YAML_LOADER(front)
            return self._parse(self.loader, body, body_line)
        except yaml.MarkedYAMLError as e:
            return self._yaml_failure(e)
        except yaml.YAMLError as e:  # no position (a reader error): say what, at the '---' line
            return self._failure(Problem(f"YAML error: {str(e).splitlines()[0]}", 0))
        except RecursionError:
            return self._failure(Problem("the front matter nests too deeply to read", 0))
        finally:
            if self.loader is not None:
                self.loader.dispose()
            self.loader = None

    def _failure(self, problem: Problem) -> ParseResult:
        return ParseResult(self.stem, None, (problem,), name_known=False, format=self.format)

    def _yaml_failure(self, e: yaml.MarkedYAMLError) -> ParseResult:
        mark = e.problem_mark or e.context_mark
        what = e.problem or "the front matter is not valid YAML"
        if isinstance(e, yaml.constructor.ConstructorError):
            # Tags such as !!python/object are refused by the safe loader: not a syntax slip.
            message = f"YAML value not allowed: {what}"
        else:
            message = f"YAML syntax error: {what}"
            self.syntax_failed = True
        if mark is None:
            return self._failure(Problem(message, 0))
        if e.context and e.context_mark is not None:
            context_line = self.position(e.context_mark.index)[0]
            if context_line != self.position(mark.index)[0]:
                message += f" ({e.context} on line {context_line + 1})"
        return self.point(mark.index, message)

    def _parse(self, loader: yaml.SafeLoader, body: str, body_line: int) -> ParseResult:
        node = loader.get_single_node()
        if node is None:  # an empty front matter: every key takes its default
            pairs: list[tuple[yaml.Node, yaml.Node]] = []
        elif isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # resolve "<<" merge keys as yaml.safe_load would
            pairs = list(node.value)
        else:
            self.error(
                node,
                "the front matter must be a mapping of keys to values, "
                f"not {_kind(self.construct(node))}",
            )
            return ParseResult(
                self.stem, None, tuple(self.problems), name_known=False, format=self.format
            )

        values: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in pairs:
            key = self.construct(key_node)
            if not isinstance(key, str):
                self.error(key_node, f"keys must be plain names, not {_kind(key)}")
                continue
            key = KEY_ALIASES.get(key, key)
            if key in seen:
                first = self.position(seen[key].start_mark.index)[0]
                self.error(key_node, f"duplicate key {key!r} (first set on line {first + 1})")
                continue
            seen[key] = key_node
            if key in SPAN_KEYS:
                self.spans[key] = self.span(value_node)
            values[key] = self._value(key, key_node, value_node)

        name = values.get("name") if isinstance(values.get("name"), str) else None
        fields = {k: v for k, v in values.items() if k in KNOWN_KEYS and v is not None}
        extra = {k: v for k, v in values.items() if k not in KNOWN_KEYS}
        problems = tuple(sorted(self.problems, key=lambda p: (p.line, p.column)))
        if any(p.severity == "error" for p in problems):
            return ParseResult(
                name or self.stem,
                None,
                problems,
                name_known=not self.name_failed,
                spans=self.spans,
                format=self.format,
            )
        definition = AgentDefinition(
            name=name or self.stem,
            source=self.source,
            body=body,
            extra=extra,
            body_line=body_line,
            format=self.format,
            tool_groups=tool_groups(fields.get("tools") or ()),
            **{k: v for k, v in fields.items() if k != "name"},
        )
        return ParseResult(
            definition.name, definition, problems, spans=self.spans, format=self.format
        )

    def _value(self, key: str, key_node: yaml.Node, node: yaml.Node) -> Any:
        """The checked value of one key: None when unset or wrong (wrong ones add an error)."""
        if key not in KNOWN_KEYS:
            if key in FOREIGN_KEYS:
                message = (
                    f"{key!r} belongs to another tool's agent format; "
                    "agentls keeps it but does not use it"
                )
            else:
                message = (
                    f"unknown key {key!r}; agentls keeps it but does not use it{_suggestion(key)}"
                )
            self.problems.append(self.span(key_node).problem(message, "hint"))
            return self.construct(node)
        value = self.construct(node)
        if value is None:
            return None
        check = getattr(self, f"_check_{key}")
        result: Any = check(node, value)
        return result

    def _string(self, node: yaml.Node, value: Any, key: str) -> str | None:
        if isinstance(value, str):
            return value
        self.error(node, f"{key} must be a string, not {_kind(value)}; put it in quotes")
        return None

    def _check_name(self, node: yaml.Node, value: Any) -> str | None:
        text = self._string(node, value, "name")
        if text is not None:
            text = text.strip()
            if not text:
                self.error(node, "name must not be empty (leave it out to use the file name)")
                text = None
            elif _CONTROL.search(text):
                self.error(node, "name must be one line without control characters")
                text = None
        self.name_failed = text is None
        return text

    def _check_description(self, node: yaml.Node, value: Any) -> str | None:
        text = self._string(node, value, "description")
        return None if text is None else text.strip()

    def _check_backend(self, node: yaml.Node, value: Any) -> str | None:
        text = self._string(node, value, "backend")
        if text is not None and not text.strip():
            self.error(node, "backend must not be empty (leave it out to use the default backend)")
            return None
        return None if text is None else text.strip()

    def _check_model(self, node: yaml.Node, value: Any) -> str | None:
        if isinstance(value, list):
            # Copilot lists models to try in order; agentls cannot probe which exist, so the first.
            items = node.value if isinstance(node, yaml.SequenceNode) else []
            for item_node, item in zip(items, value, strict=False):
                if not isinstance(item, str):
                    self.error(item_node, f"model names must be strings, not {_kind(item)}")
                    return None
            value = value[0] if value else None
            if value is None:
                return None
        text = self._string(node, value, "model")
        if text is None:
            return None
        text = text.strip()
        if not text or text == INHERIT_MODEL:
            return None
        return text

    def _string_list(
        self, node: yaml.Node, value: Any, key: str
    ) -> tuple[list[tuple[yaml.Node, str]], bool]:
        """The string items of a list (or one string) with their nodes; whether all were strings.

        Non-string items are reported and left out, so the remaining ones can still be checked and
        the user sees every problem of the list at once.
        """
        if isinstance(value, str):
            return [(node, value)], True
        if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{key} must be a list of strings, not {_kind(value)}")
            return [], False
        items: list[tuple[yaml.Node, str]] = []
        ok = True
        for item_node, item in zip(node.value, value, strict=True):
            if isinstance(item, str):
                items.append((item_node, item))
            else:
                self.error(item_node, f"each {key} entry must be a string, not {_kind(item)}")
                ok = False
        return items, ok

    def _check_context(self, node: yaml.Node, value: Any) -> tuple[str, ...] | None:
        items, ok = self._string_list(node, value, "context")
        for item_node, pattern in items:
            reason = check_glob(pattern)
            if reason is not None:
                self.error(item_node, f"context glob {pattern!r}: {reason}")
                ok = False
        return tuple(pattern for _, pattern in items) if ok else None

    def _check_include(self, node: yaml.Node, value: Any) -> tuple[str, ...] | None:
        items, _ = self._string_list(node, value, "include")
        kinds: list[str] = []
        for item_node, kind in items:
            if kind not in INCLUDE_KINDS:
                self.error(item_node, f"include {kind!r} is not one of: {', '.join(INCLUDE_KINDS)}")
            elif kind not in kinds:
                kinds.append(kind)
        return tuple(kinds)

    def _positive_int(self, node: yaml.Node, value: Any, key: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, f"{key} must be a positive whole number, not {_kind(value)}")
            return None
        if value <= 0:
            self.error(node, f"{key} must be a positive whole number, not {value}")
            return None
        return value

    def _check_max_files(self, node: yaml.Node, value: Any) -> int | None:
        return self._positive_int(node, value, "max_files")

    def _check_max_context_tokens(self, node: yaml.Node, value: Any) -> int | None:
        return self._positive_int(node, value, "max_context_tokens")

    def _check_max_turns(self, node: yaml.Node, value: Any) -> int | None:
        return self._positive_int(node, value, "max_turns")

    def _check_timeout(self, node: yaml.Node, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(node, f"timeout must be a positive number of seconds, not {_kind(value)}")
            return None
        if not math.isfinite(value) or value <= 0:
            self.error(node, f"timeout must be a positive number of seconds, not {value}")
            return None
        return float(value)

    def _check_output(self, node: yaml.Node, value: Any) -> str | None:
        if not isinstance(value, str) or value not in OUTPUT_KINDS:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            self.error(node, f"output {shown} is not one of: {', '.join(OUTPUT_KINDS)}")
            return None
        return value

    def _check_task(self, node: yaml.Node, value: Any) -> str | None:
        text = self._string(node, value, "task")
        return None if text is None else text.strip()

    def _check_code_action(self, node: yaml.Node, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.error(node, f"code_action must be true or false, not {_kind(value)}")
            return None
        return value

    def _check_steps(self, node: yaml.Node, value: Any) -> tuple[RecipeStep, ...] | None:
        steps, problems = read_steps(node, self.span, self.construct)
        self.problems.extend(problems)
        return steps

    def _check_continue_on_error(self, node: yaml.Node, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.error(node, f"continue_on_error must be true or false, not {_kind(value)}")
            return None
        return value

    def _check_handoffs(self, node: yaml.Node, value: Any) -> tuple[Handoff, ...]:
        """Copilot's format, read as leniently as Copilot: what cannot be read is a hint.

        The span of each kept entry's ``agent`` goes in ``spans`` as ``handoffs.<i>``, where the
        registry shows a target no agent has.
        """
        read = read_handoffs(node, value)
        for hint_node, message in read.hints:
            self.problems.append(self.span(hint_node).problem(message, "hint"))
        for i, agent_node in enumerate(read.agent_nodes):
            self.spans[f"handoffs.{i}"] = self.span(agent_node)
        return read.handoffs

    def _check_tools(self, node: yaml.Node, value: Any) -> tuple[str, ...] | None:
        """Any shape is accepted; what cannot be read is a hint, never an error."""
        names, why = read_tools(value)
        if why is not None:
            self.problems.append(
                self.span(node).problem(
                    f"tools: {why}; agentls ignores what it cannot read", "hint"
                )
            )
        missing = [g for g in tool_groups(names) if g not in OFFERED_GROUPS]
        if missing:
            self.problems.append(
                self.span(node).problem(
                    f"tools: agentls has no {', '.join(missing)} tools; the agent runs without "
                    "them (agentls offers read, search and edit)",
                    "hint",
                )
            )
        return names


_PLAIN_VALUE = re.compile(
    r"([A-Za-z_][\w.-]*)([^\S\r\n]*:[^\S\r\n]+)(.*?)([^\S\r\n]*)(\r\n|\r|\n|$)"
)
"""A top-level ``key: value`` line (keys start at column 0)."""

_NOT_PLAIN_START = tuple("\"'[{|>&*!#%")
"""Values starting with these are quoted, flow, block, anchored, tagged or comments: left alone."""


def _quote_plain_values(front: str) -> tuple[str, list[tuple[int, int, int]]]:
    """The front matter with misread plain single-line values double-quoted, and where they were.

    A value is quoted when it is plain (not quoted, flow, block or tagged), fits on its line
    (the next line is not an indented continuation) and strict YAML would misread it: it holds
    ``': '`` or ends with ``':'``, or starts with a character YAML reserves (``@``, backtick).
    Returns the text and, per quoted value, its 0-based line and column span in the original.
    """
    lines = front.splitlines(keepends=True)
    out: list[str] = []
    where: list[tuple[int, int, int]] = []
    for i, line in enumerate(lines):
        m = _PLAIN_VALUE.fullmatch(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        continued = following[:1] in (" ", "\t") and following.strip()
        if m is None or continued:
            out.append(line)
            continue
        value = m.group(3)
        misread = (
            ": " in value or ":\t" in value or value.endswith(":") or value.startswith(("@", "`"))
        )
        if not value or value.startswith(_NOT_PLAIN_START) or not misread:
            out.append(line)
            continue
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        start = m.start(3)
        out.append(f'{m.group(1)}{m.group(2)}"{escaped}"{m.group(4)}{m.group(5)}')
        where.append((i, start, start + len(value)))
    return "".join(out), where
