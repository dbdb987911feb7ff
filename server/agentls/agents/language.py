"""Language features for agent definition files: what is at a position in the front matter.

Completion, hover, go-to-definition and document symbols all start from the same question: which
key or value is under the cursor of this (possibly unsaved, possibly half-typed) text? The YAML
parser cannot answer it for text being typed, so this module reads the front matter line by line:
top-level ``key:`` lines, list items and flow lists under them. What it offers comes from the
definition format's own tables (``KNOWN_KEYS``, ``FOREIGN_KEYS``, ``INCLUDE_KINDS``,
``OUTPUT_KINDS`` in ``agents.definition``), so keys added there show up here, and from a
``Catalog`` of the configuration the service hands in (backend names, their kinds and models).

Everything is pure: text in, plain values out. Lines are 0-based, columns count code points; the
LSP layer converts them to the client's units. Nothing here reads a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentls.agents.definition import (
    FOREIGN_KEYS,
    INCLUDE_KINDS,
    KNOWN_KEYS,
    OUTPUT_KINDS,
    parse_definition,
)
from agentls.agents.tools import TOOLS
from agentls.backends.models import resolve_model
from agentls.config import BackendConfig, ModelAliases

KEY_DOCS: Mapping[str, tuple[str, str]] = {
    "name": ("The agent's name, used to run it.", "the file name without `.md`/`.agent.md`"),
    "description": ("One line saying what the agent does; shown in lists and code actions.", ""),
    "backend": ("A backend named in the configuration (`[backends.NAME]`).", "`default_backend`"),
    "model": ("Overrides the backend's model for this agent.", "the backend's `model`"),
    "context": (
        "Globs relative to the workspace folder (gitignore syntax); a leading `!` excludes.",
        "no files besides the editor state",
    ),
    "include": (
        "Editor state to attach: `selection`, `active_file`, `open_files`.",
        "`[selection, active_file]`",
    ),
    "max_files": ("The most files the context may hold.", "`limits.max_files` (200)"),
    "max_context_tokens": (
        "The token budget of the whole prompt.",
        "`limits.max_context_tokens` (60000)",
    ),
    "timeout": ("Seconds a run may take.", "`limits.run_timeout` (300)"),
    "output": (
        "`markdown` or `text`: the output is the answer; `diagnostics`: findings in the output "
        "(`path:line[:column]: [severity:] message`) become editor diagnostics.",
        "`markdown`",
    ),
    "tools": ("Tool names from Claude Code or Copilot agent files.", "none"),
    "task": (
        "The default task: what a run from a code action or code lens asks for.",
        "empty (the agent's body says what to do)",
    ),
    "code_action": ("`false` keeps the agent out of the code-action menu.", "`true`"),
    "steps": (
        "Makes this file a recipe: a list of steps, each `{id, agent, needs?, task?, for_each?, "
        "max_parallel?}`, run as a DAG of agent runs (docs/agents.md, Recipes).",
        "none (an agent, not a recipe)",
    ),
    "continue_on_error": (
        "Recipes: `true` keeps independent steps running after a step fails, and the recipe "
        "succeeds with a note.",
        "`false` (the first failure stops the recipe)",
    ),
    "handoffs": (
        "Next steps offered after a run (Copilot's format): a list of `{label, agent, prompt, "
        "send}`; `send: true` runs the agent at once, else its prompt can be edited first.",
        "none",
    ),
}
"""What each key means and its default, for completion and hover. A key of ``KNOWN_KEYS`` without
an entry here is still offered, with a generic text."""

VALUE_DOCS: Mapping[str, str] = {
    "selection": "The selected text of the file the run starts from.",
    "active_file": "The whole file the run starts from.",
    "open_files": "Every file open in the editor.",
    "markdown": "The output is Markdown text (the default).",
    "text": "The output is plain text.",
    "diagnostics": "Findings in the output become diagnostics on the files they name.",
}


_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)[ \t]*:(?P<rest>.*)$")
_PARTIAL_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)?$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_VALUE_STOP = re.compile(r"[\s\[\],:\"'{}]")


def split_lines(text: str) -> list[str]:
    """The lines of a text as LSP counts them (CR, LF, CRLF), without their breaks."""
    return _LINE_BREAK.split(text)


@dataclass(frozen=True)
class KeyLine:
    """A top-level ``key:`` line of the front matter."""

    key: str
    line: int
    end_column: int
    """Where the key's name ends."""
    value_column: int
    """Where its value starts on that line (after the colon and spaces)."""
    last_line: int
    """The last line belonging to this key (its list items, continuation lines)."""


@dataclass(frozen=True)
class FrontMatter:
    """Where the front matter is, and its top-level keys."""

    end: int
    """The line of the closing ``---``."""
    keys: tuple[KeyLine, ...]


def front_matter(lines: Sequence[str]) -> FrontMatter | None:
    """The front matter of a definition's lines, or None when there is none (or it is unclosed
    and holds no key, so nothing can be said about it)."""
    if not lines or lines[0].lstrip("\ufeff").rstrip() != "---":
        return None
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), len(lines))
    starts: list[tuple[str, int, int, int]] = []
    for i in range(1, end):
        match = _KEY_LINE.match(lines[i])
        if match is None:
            continue
        rest = match["rest"]
        value_column = match.end("rest") - len(rest.lstrip())
        starts.append((match["key"], i, match.end("key"), value_column))
    keys = []
    for n, (key, line, key_end, value_column) in enumerate(starts):
        last = (starts[n + 1][1] - 1) if n + 1 < len(starts) else end - 1
        keys.append(KeyLine(key, line, key_end, value_column, last))
    return FrontMatter(end, tuple(keys))


@dataclass(frozen=True)
class Place:
    """What is under the cursor: a key being typed, or a value of ``key``."""

    kind: Literal["key", "value"]
    key: str | None
    prefix: str
    """The part of the word before the cursor."""
    start: int
    """Column where the word under the cursor starts."""
    end: int
    """Column where it ends."""
    line: int


def place_at(lines: Sequence[str], line: int, column: int) -> Place | None:
    """The key or value at a position inside the front matter; None outside it."""
    fm = front_matter(lines)
    if fm is None or not 0 < line < fm.end or line >= len(lines):
        return None
    text = lines[line]
    column = min(column, len(text))
    owner = next((k for k in reversed(fm.keys) if k.line <= line), None)
    if owner is not None and owner.line == line:
        if column <= owner.end_column:
            return Place("key", None, text[:column], 0, owner.end_column, line)
        return _value_place(text, line, column, owner.key)
    if text[:1] not in (" ", "\t", "-") and _PARTIAL_KEY.match(text[:column].rstrip()):
        word_end = column
        while word_end < len(text) and not _VALUE_STOP.match(text[word_end]):
            word_end += 1
        return Place("key", None, text[:column], 0, word_end, line)
    if owner is not None:
        return _value_place(text, line, column, owner.key)
    return None


def _value_place(text: str, line: int, column: int, key: str) -> Place:
    start = column
    while start > 0 and not _VALUE_STOP.match(text[start - 1]):
        start -= 1
    end = column
    while end < len(text) and not _VALUE_STOP.match(text[end]):
        end += 1
    return Place("value", key, text[start:column], start, end, line)


@dataclass(frozen=True)
class BackendInfo:
    """A configured backend, as completion and hover describe it."""

    name: str
    kind: str
    model: str | None
    origin: str


@dataclass(frozen=True)
class Catalog:
    """The configuration facts language features need (the service builds it from memory)."""

    backends: Mapping[str, BackendInfo] = field(default_factory=dict)
    default_backend: str | None = None
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    """Model aliases (alias -> the model sent) of the default backend: ``[models]``, its
    ``[models.NAME]`` and Claude Code's names on an ``anthropic`` backend; offered and explained
    for ``model``."""
    configs: Mapping[str, BackendConfig] = field(default_factory=dict)
    """The configured backends, to resolve an agent's effective model as a run will."""
    models: ModelAliases = field(default_factory=ModelAliases)
    """The ``[models]`` table, with ``configs`` for ``backends.models.resolve_model``."""


@dataclass(frozen=True)
class Item:
    """One completion item."""

    label: str
    kind: Literal["key", "value"]
    detail: str
    documentation: str
    insert_text: str
    line: int
    start: int
    end: int


def _key_doc(key: str) -> str:
    if key in KEY_DOCS:
        doc, default = KEY_DOCS[key]
        return f"{doc}\n\nDefault: {default}." if default else doc
    if key in FOREIGN_KEYS:
        return "Another tool's key: agentls keeps it but does not use it."
    return "A front-matter key agentls reads."


def value_choices(key: str, catalog: Catalog) -> list[tuple[str, str]]:
    """The values a key may take, each with a short description."""
    if key == "backend":
        return [
            (b.name, f"{b.kind} backend" + (f", model {b.model}" if b.model else ""))
            for b in sorted(catalog.backends.values(), key=lambda b: b.name)
        ]
    if key == "model":
        models: dict[str, str] = {}
        for b in sorted(catalog.backends.values(), key=lambda b: b.name):
            if b.model:
                models.setdefault(b.model, f"the model of backend {b.name}")
        for alias, model in catalog.model_aliases.items():
            models.setdefault(alias, f"alias of {model}")
        return sorted(models.items())
    if key == "include":
        return [(k, VALUE_DOCS.get(k, "")) for k in INCLUDE_KINDS]
    if key == "output":
        return [(k, VALUE_DOCS.get(k, "")) for k in OUTPUT_KINDS]
    if key == "tools":
        return [(name, f"{group} tool") for name, group in TOOLS.items()]
    if key == "code_action":
        return [("true", "offered as a code action"), ("false", "not offered")]
    if key == "continue_on_error":
        return [("true", "independent steps go on"), ("false", "the first failure stops it")]
    return []


def complete(text: str, line: int, column: int, catalog: Catalog) -> list[Item]:
    """Completion items at a position of a definition's text (empty outside the front matter)."""
    lines = split_lines(text)
    place = place_at(lines, line, column)
    if place is None:
        return []
    if place.kind == "key":
        fm = front_matter(lines)
        used = {k.key for k in fm.keys if k.line != line} if fm else set()
        return [
            Item(key, "key", "agentls key", _key_doc(key), f"{key}: ", line, place.start, place.end)
            for key in KNOWN_KEYS
            if key not in used and key.startswith(place.prefix.strip())
        ]
    assert place.key is not None
    return [
        Item(
            value,
            "value",
            detail,
            VALUE_DOCS.get(value, detail),
            value,
            line,
            place.start,
            place.end,
        )
        for value, detail in value_choices(place.key, catalog)
        if value.startswith(place.prefix)
    ]


@dataclass(frozen=True)
class HoverText:
    """Markdown to show, over a span of one line."""

    markdown: str
    line: int
    start: int
    end: int


def hover(text: str, source: Path, line: int, column: int, catalog: Catalog) -> HoverText | None:
    """What the key or value at a position means, with the effective value where it matters."""
    lines = split_lines(text)
    place = place_at(lines, line, column)
    if place is None:
        return None
    fm = front_matter(lines)
    owner = next((k for k in fm.keys if k.line == line), None) if fm else None
    if place.kind == "key":
        if owner is None:
            return None
        key = owner.key
        parts = [f"**{key}**", "", _key_doc(key)]
        effective = _effective(key, text, source, catalog)
        if effective:
            parts += ["", effective]
        return HoverText("\n".join(parts), line, 0, owner.end_column)
    word = lines[line][place.start : place.end]
    if not word or place.key is None:
        return None
    key = place.key
    if key == "backend":
        info = catalog.backends.get(word)
        if info is None:
            configured = ", ".join(sorted(catalog.backends)) or "none"
            body = f"Backend `{word}` is not configured (configured: {configured})."
        else:
            body = (
                f"Backend `{word}`: {info.kind}, configured in the {info.origin} configuration"
                + (f"; model `{info.model}`." if info.model else ".")
            )
        return HoverText(body, line, place.start, place.end)
    if key == "model":
        target = catalog.model_aliases.get(word)
        body = (
            f"Model alias `{word}`: `{target}` is sent to the backend."
            if target
            else f"Model `{word}` is sent to the backend as is (it overrides the backend's model)."
        )
        return HoverText(body, line, place.start, place.end)
    doc = VALUE_DOCS.get(word)
    if doc:
        return HoverText(f"`{word}`: {doc}", line, place.start, place.end)
    return None


def _effective(key: str, text: str, source: Path, catalog: Catalog) -> str:
    """The value that will really be used for ``backend`` and ``model``."""
    if key not in ("backend", "model"):
        return ""
    definition = parse_definition(text, source).definition
    if definition is None:
        return ""
    backend_name = definition.backend or catalog.default_backend
    info = catalog.backends.get(backend_name) if backend_name else None
    if key == "backend":
        if info is None:
            return f"Effective: `{backend_name}` (not configured)." if backend_name else ""
        return f"Effective: `{info.name}` ({info.kind})."
    config = catalog.configs.get(info.name) if info else None
    if config is not None:
        choice = resolve_model(definition.model, config, catalog.models)
        if choice.model is None:
            return "Effective: the backend's own default model."
        note = f"\n\n{choice.note}" if choice.note else ""
        return f"Effective: `{choice.model}` is the model sent.{note}"
    model = definition.model or (info.model if info else None)
    model = catalog.model_aliases.get(model, model) if model else model
    if model is None:
        return "Effective: the backend's own default model."
    return f"Effective: `{model}` is the model sent."


def backend_at(text: str, line: int, column: int) -> str | None:
    """The backend name under the cursor when it is the value of ``backend``."""
    lines = split_lines(text)
    place = place_at(lines, line, column)
    if place is None or place.kind != "value" or place.key != "backend":
        return None
    word = lines[line][place.start : place.end]
    return word or None


def backend_header_line(config_text: str, backend: str) -> int | None:
    """The line of ``[backends.NAME]`` (bare or quoted) in a TOML file, or None."""
    pattern = re.compile(
        r"^\s*\[\s*backends\s*\.\s*(?:"
        + re.escape(backend)
        + r"|\""
        + re.escape(backend)
        + r"\"|'"
        + re.escape(backend)
        + r"')\s*\]"
    )
    for n, text in enumerate(split_lines(config_text)):
        if pattern.match(text):
            return n
    return None


@dataclass(frozen=True)
class Symbol:
    """One document symbol: the agent, or one of its keys. Spans are (line, column) pairs."""

    name: str
    kind: Literal["agent", "key"]
    detail: str
    start: tuple[int, int]
    end: tuple[int, int]
    selection_start: tuple[int, int]
    selection_end: tuple[int, int]
    children: tuple[Symbol, ...] = ()


def symbols(text: str, source: Path) -> list[Symbol]:
    """The agent as a symbol, with its front-matter keys as children."""
    lines = split_lines(text)
    parsed = parse_definition(text, source)
    fm = front_matter(lines)
    last = len(lines) - 1
    end = (last, len(lines[last]))
    children = []
    if fm is not None:
        for k in fm.keys:
            value = lines[k.line][k.value_column :].strip()
            children.append(
                Symbol(
                    k.key,
                    "key",
                    value[:80],
                    (k.line, 0),
                    (k.last_line, len(lines[k.last_line])),
                    (k.line, 0),
                    (k.line, k.end_column),
                )
            )
    detail = parsed.definition.description if parsed.definition is not None else ""
    return [
        Symbol(
            parsed.name, "agent", detail, (0, 0), end, (0, 0), (0, len(lines[0])), tuple(children)
        )
    ]


_TOML_STRING_VALUE = re.compile(
    r"^\s*(?P<key>[A-Za-z_][\w-]*)\s*=\s*(?P<quote>[\"']?)(?P<value>[^\"']*)$"
)
"""``key = "partial value`` up to the cursor (the value not closed yet)."""


def config_complete(
    text: str, line: int, column: int, catalog: Catalog, kinds: Sequence[str]
) -> list[Item]:
    """Completion in ``agentls.toml``: ``default_backend`` names a configured backend, a
    backend's ``kind`` is one of ``kinds``. Other keys are the configuration's business."""
    lines = split_lines(text)
    if line >= len(lines):
        return []
    before = lines[line][:column]
    match = _TOML_STRING_VALUE.match(before)
    if match is None or not match["quote"]:
        return []
    key = match["key"]
    if key == "default_backend":
        backends = sorted(catalog.backends.values(), key=lambda b: b.name)
        choices = [(b.name, f"{b.kind} backend") for b in backends]
    elif key == "kind" and _in_backend_table(lines, line):
        choices = [(k, "backend kind") for k in kinds]
    else:
        return []
    start = match.start("value")
    rest = lines[line][column:]
    end = column + next((i for i, c in enumerate(rest) if c in "\"'"), len(rest))
    return [
        Item(value, "value", detail, detail, value, line, start, end)
        for value, detail in choices
        if value.startswith(match["value"])
    ]


def _in_backend_table(lines: Sequence[str], line: int) -> bool:
    for n in range(line, -1, -1):
        stripped = lines[n].strip()
        if stripped.startswith("["):
            return re.match(r"^\[\s*backends\s*\.", stripped) is not None
    return False


def config_backend_at(text: str, line: int, column: int) -> str | None:
    """The backend named by ``default_backend = "NAME"`` under the cursor in ``agentls.toml``."""
    lines = split_lines(text)
    if line >= len(lines):
        return None
    match = re.match(r'^\s*default_backend\s*=\s*(["\'])(?P<name>[^"\']*)\1', lines[line])
    if match is None or not match.start("name") <= column <= match.end("name"):
        return None
    return match["name"] or None
