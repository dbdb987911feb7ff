"""An agent definition: a Markdown file with YAML front matter whose body is the system prompt.

This module owns the definition format: where definition files live (``DEFINITION_GLOBS``), how
one file's text becomes a frozen ``AgentDefinition`` (``parse_agent``), and what is wrong with it.
``Problem`` is one thing wrong with a file, positioned so the LSP layer can publish it as a
diagnostic. Parsing never raises on bad input: it returns problems. Reading files and knowing which
definitions exist belong to ``agents.registry``; the format for users is in ``docs/agents.md``.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pathspec
import yaml

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
    tools: tuple[str, ...] = ()
    """Accepted for compatibility with other tools' formats; agentls runs no tools itself."""
    task: str = ""
    """The default task: what a run started from a code action or code lens asks for."""
    code_action: bool = True
    """Whether the agent is offered as a code action on workspace files."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown front-matter keys, kept and reported as hints."""
    body_line: int = 0
    """0-based line where the body starts in the file."""


DEFINITION_GLOBS: tuple[str, ...] = (
    ".agents/**/*.md",
    ".claude/agents/*.md",
    ".github/agents/*.agent.md",
)
"""Where definition files live, relative to a workspace folder; the last two are other tools'."""

FOREIGN_DIRS: tuple[str, ...] = (".claude/agents", ".github/agents")
"""Folders of other tools' agent files (Claude Code, GitHub Copilot); their keys are accepted."""

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
    "task",
    "code_action",
)
"""Front-matter keys agentls reads. Anything else is kept in ``extra`` and reported as a hint."""

FOREIGN_KEYS: frozenset[str] = frozenset(
    {
        # Claude Code subagents (.claude/agents/*.md)
        "color",
        "disallowedTools",
        "permissionMode",
        "maxTurns",
        "skills",
        "hooks",
        "mcpServers",
        "memory",
        # GitHub Copilot / VS Code custom agents (.github/agents/*.agent.md)
        "argument-hint",
        "target",
        "infer",
        "mcp-servers",
        "handoffs",
        "agents",
        "user-invocable",
        "user-invokable",
        "disable-model-invocation",
        "metadata",
    }
)
"""Keys other tools define: still hints (agentls ignores them), worded not to read as typos."""

INHERIT_MODEL = "inherit"
"""Claude Code's way of saying "no override"; read as no ``model`` at all."""

_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when present: faster, and it refuses nesting deeper than 1000 instead of recursing."""

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
"""One line with its break. Only CR, LF and CRLF end lines, as in LSP (unlike str.splitlines)."""

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
    ``spans`` maps each top-level key to the span of its value, for problems found later
    (duplicate names, unknown backends).
    """

    name: str
    definition: AgentDefinition | None
    problems: tuple[Problem, ...]
    name_known: bool = True
    spans: Mapping[str, Span] = field(default_factory=dict)


def default_name(source: Path) -> str:
    """The name of an agent whose file sets none: the stem, without ``.agent`` for Copilot files."""
    name = source.name
    for suffix in (".agent.md", ".md"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return source.stem or name


def is_definition_path(rel_posix: str) -> bool:
    """Whether a path relative to a workspace folder is where a definition file lives.

    Matches ``DEFINITION_GLOBS`` the way shell globs do: ``*`` and ``**`` skip hidden names, which
    also keeps editor droppings such as Emacs' ``.#reviewer.md`` lock links out of the registry.
    """
    parts = rel_posix.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in rel_posix:
        return False
    name = parts[-1]
    if name.startswith("."):
        return False
    if parts[0] == ".agents":
        return (
            len(parts) >= 2
            and name.endswith(".md")
            and len(name) > len(".md")
            and not any(part.startswith(".") for part in parts[1:-1])
        )
    if len(parts) != 3 or parts[1] != "agents":
        return False
    if parts[0] == ".claude":
        return name.endswith(".md") and len(name) > len(".md")
    if parts[0] == ".github":
        return name.endswith(".agent.md") and len(name) > len(".agent.md")
    return False


def is_foreign_format(source: Path) -> bool:
    """Whether ``source`` is another tool's agent file (``.claude/agents``, ``.github/agents``)."""
    parent = source.parent
    return parent.name == "agents" and parent.parent.name in (".claude", ".github")


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


def parse_definition(text: str, source: Path) -> ParseResult:
    """Like ``parse_agent``, plus the name and value spans the registry needs. Never raises."""
    stem = default_name(source)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE.findall(text)
    if not lines or lines[0].rstrip() != "---":
        definition = AgentDefinition(name=stem, source=source, body=text)
        return ParseResult(stem, definition, ())
    close = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if close is None:
        problem = Problem(
            "the front matter that starts here has no closing '---' line",
            0,
            0,
            0,
            len(lines[0].rstrip("\r\n")),
        )
        return ParseResult(stem, None, (problem,), name_known=False)
    front = "".join(lines[1:close])
    body = "".join(lines[close + 1 :])
    return _FrontMatter(source, stem, shift=1).parse(front, body, body_line=close + 1)


def _kind(value: object) -> str:
    """How a YAML value reads to a user, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean (YAML reads yes/no/on/off/true/false as booleans)"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def _split_tools(value: str) -> tuple[str, ...]:
    """Split Claude Code's ``tools: Read, Grep, Agent(a, b)`` on commas outside parentheses."""
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in value:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return tuple(item for item in items if item)


def _suggestion(key: str) -> str:
    """A "did you mean" tail for a key that looks like a misspelt known key."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).replace("-", "_").lower()
    if snake in KNOWN_KEYS:
        return f"; did you mean {snake!r}?"
    close = difflib.get_close_matches(snake, KNOWN_KEYS, n=1, cutoff=0.8)
    return f"; did you mean {close[0]!r}?" if close else ""


class _FrontMatter:
    """Reads one front matter: YAML nodes (for positions) turned into checked values."""

    def __init__(self, source: Path, stem: str, *, shift: int) -> None:
        self.source = source
        self.stem = stem
        self.shift = shift
        """Lines before the YAML text in the file (the opening '---')."""
        self.line_starts: list[int] = [0]
        """Offsets where each line of the YAML text starts, by LSP's rules for line breaks."""
        self.problems: list[Problem] = []
        self.spans: dict[str, Span] = {}
        self.name_failed = False
        """Whether ``name`` was set but unusable; then the file's name is not really known."""
        self.loader: yaml.SafeLoader | None = None

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
        """The Python value of a node (the loader caches it, so aliases stay shared)."""
        assert self.loader is not None
        return self.loader.construct_object(node, deep=True)

    def parse(self, front: str, body: str, *, body_line: int) -> ParseResult:
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
        return ParseResult(self.stem, None, (problem,), name_known=False)

    def _yaml_failure(self, e: yaml.MarkedYAMLError) -> ParseResult:
        mark = e.problem_mark or e.context_mark
        what = e.problem or "the front matter is not valid YAML"
        if isinstance(e, yaml.constructor.ConstructorError):
            # Tags such as !!python/object are refused by the safe loader: not a syntax slip.
            message = f"YAML value not allowed: {what}"
        else:
            message = f"YAML syntax error: {what}"
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
            return ParseResult(self.stem, None, tuple(self.problems), name_known=False)

        values: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in pairs:
            key = self.construct(key_node)
            if not isinstance(key, str):
                self.error(key_node, f"keys must be plain names, not {_kind(key)}")
                continue
            if key in seen:
                self.error(key_node, f"duplicate key {key!r} (first set on line {seen[key] + 1})")
                continue
            seen[key] = self.position(key_node.start_mark.index)[0]
            self.spans[key] = self.span(value_node)
            values[key] = self._value(key, key_node, value_node)

        name = values.get("name") if isinstance(values.get("name"), str) else None
        fields = {k: v for k, v in values.items() if k in KNOWN_KEYS and v is not None}
        extra = {k: v for k, v in values.items() if k not in KNOWN_KEYS}
        problems = tuple(sorted(self.problems, key=lambda p: (p.line, p.column)))
        if any(p.severity == "error" for p in problems):
            return ParseResult(
                name or self.stem, None, problems, name_known=not self.name_failed, spans=self.spans
            )
        definition = AgentDefinition(
            name=name or self.stem,
            source=self.source,
            body=body,
            extra=extra,
            body_line=body_line,
            **{k: v for k, v in fields.items() if k != "name"},
        )
        return ParseResult(definition.name, definition, problems, spans=self.spans)

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
        if is_foreign_format(self.source):
            self.problems.append(
                self.span(node).problem(
                    f"agentls sends model {text!r} to the backend as is; leave `model` out to use "
                    "the backend's own model",
                    "hint",
                )
            )
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

    def _check_tools(self, node: yaml.Node, value: Any) -> tuple[str, ...] | None:
        if isinstance(value, str):
            return _split_tools(value)
        items, ok = self._string_list(node, value, "tools")
        return tuple(t.strip() for _, t in items if t.strip()) if ok else None
