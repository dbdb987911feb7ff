"""The prompt for one run, and its manifest: the owner of prompt layout and context budgets.

Layout. The system prompt is the agent's body with ``{{task}}``, ``{{agent}}``, ``{{workspace}}``,
``{{file}}``, ``{{selection}}`` and the request's variables filled in, in one pass (a value that
itself contains ``{{x}}`` is not expanded again, so a task cannot inject variables); unknown
``{{x}}`` stay as written. Copilot files (``.github/agents``, ``.github/prompts``) also use
Copilot's own variables in the same pass: ``${input:x}`` and ``${input:x:placeholder}`` take the
request's variable ``x`` (a missing one fails the request, naming it), ``${file}``,
``${fileBasename}``, ``${fileDirname}``, ``${fileBasenameNoExtension}``, ``${selection}``,
``${selectedText}``, ``${workspaceFolder}`` and ``${workspaceFolderBasename}`` take the values of
``{{file}}``, ``{{selection}}`` and ``{{workspace}}``. The user message is the context, one block
per file, then the task::

    <selection path="src/app.py" lines="10-24">...</selection>
    <file path="src/app.py" source="active_file">...</file>
    <task>...</task>

Order and budgets. Candidates come in this order: the selection, the active file, the files the
request names, the open files (when the agent includes ``open_files``), then the agent's globs in
every workspace folder, most recently changed first. A path is attached once (the first source
wins; later ones are listed as ``duplicate``). Secret, ignored, outside, binary, too large, missing
files are listed as excluded with the reason and never read (a secret file is not even opened).
``max_files`` counts attached files; tokens are estimated from bytes (``tokens.estimate_tokens``)
over the whole prompt, system part included. A file that does not fit is cut at a line boundary,
with a visible marker, when a useful part (``TRUNCATE_MIN_BYTES``) fits; otherwise it is excluded
with reason ``budget``.

Content. Open editor buffers win over the disk. Everything else is read through the shared
``FileCache`` (so the next run is warm), in batches sized to what can still fit, as UTF-8 bytes:
the user message is one ``bytes`` join, kept as bytes and decoded only when text is asked for (a
``str`` join of 1,000 files costs 30x more when one of them holds an emoji).

Secrets. Every included text is redacted (``context/secrets.py``) before it is fitted: the scan of
a file comes with its cached content (done in the reading thread), buffers and the selection go
through the builder's ``SecretScanner`` memo. The manifest row lists each redaction's line (in the
file) and kind. The agent's body is context too (a definition is a file of the repository, and
may paste a key into its prompt): it is redacted before the variables are filled in, and the
result's ``definition`` row (source ``agent``) lists its secrets by line in the definition file.
"""

from __future__ import annotations

import asyncio
import functools
import html
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from agentls.agents.definition import AgentDefinition
from agentls.agents.locations import COPILOT_FORMATS
from agentls.context.secrets import Redaction, SecretScanner
from agentls.context.tokens import DEFAULT_BYTES_PER_TOKEN, bytes_within, estimate_tokens
from agentls.errors import InvalidArguments, PromptTooLarge
from agentls.workspace.cache import CachedFile, FileCache
from agentls.workspace.filters import looks_binary
from agentls.workspace.index import FileEntry, WorkspaceIndex
from agentls.workspace.roots import WorkspaceRoots

Status = Literal["included", "truncated", "excluded"]

DEFAULT_INCLUDE: tuple[str, ...] = ("selection", "active_file")
"""What an agent with an empty ``include`` gets."""

TRUNCATE_MIN_BYTES = 256
"""The smallest part of a file worth attaching when the whole does not fit."""

MIN_PROMPT_BYTES = 2 * 1024 * 1024
"""The smallest default prompt bound: a definition at its size limit (1 MiB) with a long task."""

PROMPT_BUDGET_FACTOR = 4
"""The default prompt bound is this many times the bytes the token budget allows: room for a
calibration that errs, never room for a variable repeated thousands of times."""

YIELD_EVERY = 2_000
"""Candidates handled between two yields to the event loop when a glob selects a huge tree."""

_REL = operator.attrgetter("rel")
_MTIME = operator.attrgetter("mtime_ns")

_JSON_CHUNK = 64 * 1024
"""Bytes of prompt decoded and JSON-encoded at a time by ``ContextResult.prompt_json``."""

_READ_SLACK = 8
"""Extra files read per batch beyond the free slots, to replace ones that turn out unreadable."""

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_VARIABLE_OR_COPILOT = re.compile(
    r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}"
    r"|\$\{(?:input:([A-Za-z_][\w.-]*)(?::[^}]*)?|(file|fileBasename|fileDirname"
    r"|fileBasenameNoExtension|selection|selectedText|workspaceFolder|workspaceFolderBasename))\}"
)
"""``{{x}}`` (group 1), Copilot's ``${input:x...}`` (group 2) or another ``${...}`` (group 3)."""
_NEEDS_ESCAPE = re.compile(r"[&<>\"']")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""LSP's line separators (``str.splitlines`` also splits on form feeds and U+2028, LSP does not)."""

_OVERRIDABLE_BY_BUFFER = frozenset({"missing", "too_large"})
"""Disk verdicts an open buffer makes moot: an unsaved new file, a file shortened in the editor."""


@dataclass(frozen=True)
class Selection:
    """A range in a file. 0-based LSP positions; characters are UTF-16 code units."""

    path: Path
    start_line: int
    start_character: int
    end_line: int
    end_character: int


@dataclass(frozen=True)
class ContextRequest:
    """What the editor (or the CLI) says about this run."""

    task: str
    selection: Selection | None = None
    active_file: Path | None = None
    files: tuple[Path, ...] = ()
    """Already resolved by ``WorkspaceRoots.resolve``."""
    variables: Mapping[str, str] = field(default_factory=dict)


class BufferSource(Protocol):
    """The editor's open buffers; their text wins over the disk."""

    def text(self, path: Path) -> str | None:
        """The buffer's text, or None if the file is not open."""
        ...

    def open_paths(self) -> list[Path]:
        """The realpaths of the open buffers, in the editor's order."""
        ...


@dataclass(frozen=True)
class ManifestEntry:
    """One file the builder considered, and what became of it."""

    path: str
    """``WorkspaceRoots.display`` form."""
    source: str
    """``selection``, ``active_file``, ``file``, ``open_file``, ``glob``, or ``agent`` (the
    definition whose body is the system prompt)."""
    status: str
    """``included``, ``truncated`` or ``excluded``."""
    reason: str | None
    """Why it was excluded or truncated (``secret``, ``gitignored``, ``budget``, ...)."""
    bytes: int
    """Bytes of the file put in the prompt (0 when excluded)."""
    size: int
    """The file's size (on disk, or of the open buffer); 0 when unknown."""
    tokens: int
    """Estimated tokens the file's block costs in the prompt (0 when excluded)."""
    secrets: tuple[tuple[int, str], ...] = ()
    """``(line, kind)`` of each secret redacted in the part shown (``context/secrets.py``)."""

    def to_dict(self) -> dict[str, Any]:
        """The protocol form (``agentls.run`` and ``agentls.context.preview`` results)."""
        return {
            "path": self.path,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
            "bytes": self.bytes,
            "size": self.size,
            "tokens": self.tokens,
            "secrets": [{"line": line, "kind": kind} for line, kind in self.secrets],
        }


@dataclass(frozen=True)
class ContextResult:
    """The prompt of one run, and the manifest of how it was put together.

    The prompt is kept as the UTF-8 bytes the builder joined in one pass: the system part, a
    blank line, then the user message from ``user_start`` on. Text is decoded only on first use:
    decoding is most of the cost of a warm build when the text is not pure ASCII (a ``str``
    widens to 2 or 4 bytes per character for the whole message), and a caller that writes the
    prompt out (``prompt_bytes``) never needs it.
    """

    system: str
    prompt_bytes: bytes
    """The single-text form (``prompt``) as UTF-8: one ``bytes`` join of every block."""
    user_start: int
    """Where the user message starts in ``prompt_bytes`` (0 when the system part is empty)."""
    manifest: list[ManifestEntry]
    """The files considered for the user message, in candidate order."""
    tokens: int
    """Estimated tokens of the whole prompt."""
    definition: ManifestEntry | None = None
    """The agent's definition (its body is the system prompt): bytes, tokens, secrets redacted.
    The protocol lists it after the files (``service._manifest``)."""

    @functools.cached_property
    def user_bytes(self) -> bytes:
        """The user message as UTF-8 (a copy, made on first use)."""
        return self.prompt_bytes[self.user_start :] if self.user_start else self.prompt_bytes

    @functools.cached_property
    def user(self) -> str:
        """The user message as text (decoded once, on first use, without a copy of the bytes)."""
        return str(memoryview(self.prompt_bytes)[self.user_start :], "utf-8")

    @functools.cached_property
    def prompt(self) -> str:
        """The single-text form a dry run shows and a command backend receives (decoded once).

        The same text as ``render_prompt(system, user)``, from one decode of ``prompt_bytes``
        instead of a decode and a copy.
        """
        return self.prompt_bytes.decode("utf-8") if self.user_start else self.user

    @functools.cached_property
    def prompt_json(self) -> bytes:
        """``prompt`` as a JSON string (``orjson.dumps(prompt)``), encoded once, in chunks.

        Decoding the whole prompt makes one ``str`` as wide as its widest character: one emoji
        turns 14 MB of UTF-8 into a 56 MB string, slow to build and slow to encode. Chunks cut
        at character boundaries keep all but the chunks holding such characters narrow; the
        chunks' encodings, without their quotes, join into the same JSON string.
        """
        data = self.prompt_bytes
        view = memoryview(data)
        parts: list[bytes | memoryview] = [b'"']
        start, size = 0, len(data)
        while start < size:
            end = min(size, start + _JSON_CHUNK)
            while end < size and data[end] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
                end -= 1
            parts.append(memoryview(orjson.dumps(str(view[start:end], "utf-8")))[1:-1])
            start = end
        parts.append(b'"')
        return b"".join(parts)


@dataclass(slots=True)
class _Candidate:
    """A file on its way into the prompt (built and consumed inside one ``build`` call)."""

    path: Path
    source: str
    display: str
    size: int = 0
    reason: str | None = None
    data: bytes | None = None
    """Content known up front (an open buffer, the selected text); None means read the disk."""
    lines: str | None = None
    """For the selection: the 1-based line range shown in its block."""
    first_line: int = 1
    """The file line the content's first line is (the selection starts mid-file)."""


@dataclass(frozen=True)
class _Assembly:
    """A finished build, kept so that the next identical one can be answered without rebuilding.

    ``signature`` is everything the assembly depends on besides file contents (the system
    prompt, the task, the budgets, every candidate as judged before reading); ``files`` is each
    cache entry whose content went into it. Equal signatures plus entries the cache still holds
    and the disk still matches (``FileCache.still_holds``: one ``stat`` per file) mean a new build
    would produce these very bytes.
    """

    signature: tuple[Any, ...]
    files: tuple[tuple[Path, CachedFile], ...]
    result: ContextResult


def _excluded(cand: _Candidate, reason: str) -> ManifestEntry:
    """The manifest row of a file that put nothing in the prompt."""
    return ManifestEntry(cand.display, cand.source, "excluded", reason, 0, cand.size, 0)


def _attr(value: str) -> str:
    """A path as an attribute value: a quote in a file name must not end the attribute."""
    return html.escape(value, quote=True) if _NEEDS_ESCAPE.search(value) else value


def _marker(shown: int, total: int) -> bytes:
    """The line that tells the model (and the user) a file was cut, and how much is shown."""
    return (
        f"[agentls: truncated to fit the token budget; lines 1-{shown} of {total} shown]\n"
    ).encode()


def _line_count(data: bytes) -> int:
    """Lines in a file, counting a last line without a newline."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _utf16_index(line: str, units: int) -> int:
    """The ``str`` index of a UTF-16 code-unit offset in one line, clamped to the line."""
    if line.isascii():
        return min(units, len(line))
    count = 0
    for i, ch in enumerate(line):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def extract_selection(text: str, selection: Selection) -> tuple[str, int, int]:
    """The selected text and its 1-based first and last line.

    Args:
        text: the whole document.
        selection: the range (UTF-16 characters); positions past the end are clamped, a
            reversed range is put in order.

    Returns:
        ``(text, first_line, last_line)``; a range ending at column 0 of a later line does not
        count that line.

    Raises:
        InvalidArguments: a negative position (field ``range``).
    """
    start = (selection.start_line, selection.start_character)
    end = (selection.end_line, selection.end_character)
    if min(*start, *end) < 0:
        raise InvalidArguments("range", "positions must not be negative")
    if end < start:
        start, end = end, start
    bounds: list[tuple[int, int]] = []  # (start, end without the line break) of each line
    pos = 0
    for m in _LINE_BREAK.finditer(text):
        bounds.append((pos, m.start()))
        pos = m.end()
        if len(bounds) > end[0]:
            break
    else:
        bounds.append((pos, len(text)))

    def offset(line: int, character: int) -> int:
        """The ``str`` index of an LSP position, clamped to the document."""
        if line >= len(bounds):
            return len(text)
        lo, hi = bounds[line]
        return lo + _utf16_index(text[lo:hi], character)

    first = min(start[0], len(bounds) - 1)
    last = end[0] - 1 if end[1] == 0 and end[0] > start[0] else end[0]
    last = max(first, min(last, len(bounds) - 1))
    return text[offset(*start) : offset(*end)], first + 1, last + 1


def prompt_bytes_limit(max_context_tokens: int, configured: int | None = None) -> int:
    """The bound on a run's expanded prompt, in bytes.

    Args:
        max_context_tokens: the run's token budget.
        configured: ``limits.max_prompt_bytes``; None derives the bound from the budget.

    Returns:
        ``configured`` when set; otherwise ``PROMPT_BUDGET_FACTOR`` times the bytes the budget
        allows at the uncalibrated ratio, and at least ``MIN_PROMPT_BYTES`` (2 MiB for the
        default 60,000 tokens).
    """
    if configured is not None:
        return configured
    budget = bytes_within(max_context_tokens, DEFAULT_BYTES_PER_TOKEN)
    return max(MIN_PROMPT_BYTES, PROMPT_BUDGET_FACTOR * budget)


def expanded_size(
    body: str,
    values: Mapping[str, str],
    inputs: Mapping[str, str] | None = None,
    *,
    copilot: bool = False,
) -> int:
    """The UTF-8 size of ``body`` once its variables are filled in, computed without building it.

    A body of ``{{task}}`` repeated 100,000 times with a 2,000-character task would be 200 MB;
    this counts it in one pass over the body, costing no more memory than the body itself.
    ``copilot`` counts Copilot's ``${...}`` variables too (``inputs`` fill ``${input:x}``).
    """
    pattern = _VARIABLE_OR_COPILOT if copilot else _VARIABLE
    editor = _copilot_values(values) if copilot else {}
    sizes: dict[str, int] = {}
    size = len(body.encode("utf-8", "surrogatepass"))
    for m in pattern.finditer(body):
        value = _value_of(m, values, inputs or {}, editor)
        if value is None:
            continue
        key = m.group(0)
        width = sizes.get(key)
        if width is None:
            width = sizes[key] = len(value.encode("utf-8", "surrogatepass"))
        size += width - len(m.group(0).encode("utf-8", "surrogatepass"))
    return size


def _copilot_values(values: Mapping[str, str]) -> dict[str, str]:
    """Copilot's editor variables (``${file}``...) from agentls' own values."""
    file = values.get("file", "")
    base = file.rsplit("/", 1)[-1]
    workspace = values.get("workspace", "")
    selection = values.get("selection", "")
    return {
        "file": file,
        "fileBasename": base,
        "fileDirname": file.rsplit("/", 1)[0] if "/" in file else "",
        "fileBasenameNoExtension": base.rsplit(".", 1)[0] if "." in base[1:] else base,
        "selection": selection,
        "selectedText": selection,
        "workspaceFolder": workspace,
        "workspaceFolderBasename": workspace,
    }


def _value_of(
    m: re.Match[str],
    values: Mapping[str, str],
    inputs: Mapping[str, str],
    editor: Mapping[str, str],
) -> str | None:
    """The value one ``_VARIABLE_OR_COPILOT`` (or ``_VARIABLE``) match is replaced by, if any."""
    if m.group(1) is not None:
        return values.get(m.group(1))
    if m.lastindex is not None and m.lastindex >= 2 and m.group(2) is not None:
        return inputs.get(m.group(2))
    return editor.get(m.group(3))


class ContextBuilder:
    """Builds the prompt and manifest of a run from the workspace, the editor and the agent."""

    def __init__(
        self,
        roots: WorkspaceRoots,
        index: WorkspaceIndex,
        cache: FileCache,
        *,
        max_file_bytes: int,
        scan_secrets: bool = True,
    ) -> None:
        """A builder over the server's shared workspace services.

        Args:
            roots: the workspace folders (display paths, containment).
            index: which files may be used; scanned on first use if nobody started a scan.
            cache: where file contents come from (and are kept warm).
            max_file_bytes: files above this are excluded as ``too_large``.
            scan_secrets: redact secrets inside included text. False exists only so
                ``agentls bench`` can show what scanning costs; the server always scans.
        """
        self._roots = roots
        self._index = index
        self._cache = cache
        self._max_file_bytes = max_file_bytes
        self._secrets = SecretScanner()
        """Redacts secrets inside included text; remembers clean contents by hash."""
        self._scan_secrets = scan_secrets
        self._last: _Assembly | None = None
        """The last build, reused when nothing it depends on changed (see ``_Assembly``). It
        keeps one prompt alive between runs, beside the cache's copy of the files."""

    @property
    def secrets(self) -> SecretScanner:
        """The scanner (its counters show what scanning cost)."""
        return self._secrets

    async def build(
        self,
        agent: AgentDefinition,
        request: ContextRequest,
        buffers: BufferSource,
        *,
        max_files: int,
        max_context_tokens: int,
        bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN,
        max_prompt_bytes: int | None = None,
    ) -> ContextResult:
        """Assemble the prompt of one run.

        Args:
            agent: the agent (body, ``include``, ``context`` globs).
            request: task, editor state and explicit files of this run.
            buffers: the editor's open buffers.
            max_files: the most files to attach (the selection counts as one).
            max_context_tokens: the estimated-token budget of the whole prompt.
            bytes_per_token: the backend's calibration (``tokens.estimate_tokens``).
            max_prompt_bytes: ``limits.max_prompt_bytes`` (None: ``prompt_bytes_limit``).

        Returns:
            The system and user parts, their token estimate, and a manifest entry for every file
            considered.

        Raises:
            InvalidArguments: a negative budget, a non-string variable, a bad glob in the agent, or
                a negative selection position.
            PromptTooLarge: the body with its variables filled in, plus the task, would exceed
                the prompt bound; found before the prompt is built.
        """
        if max_files < 0:
            raise InvalidArguments("max_files", "must not be negative")
        if max_context_tokens < 0:
            raise InvalidArguments("max_context_tokens", "must not be negative")
        for key, value in request.variables.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArguments("variables", "names and values must be strings")
        missing = [(n, p) for n, p in agent.inputs if n not in request.variables]
        if missing:
            asked = ", ".join(f"${{input:{n}}}" + (f" ({p})" if p else "") for n, p in missing)
            example = ", ".join(f'"{n}": "..."' for n, _ in missing)
            raise InvalidArguments(
                "variables",
                f"agent {agent.name!r} asks for {asked}; pass "
                f"{'it' if len(missing) == 1 else 'them'} as variables: {{{example}}}",
            )
        if self._index.state == "empty":
            await self._index.scan()
        # While a scan runs, globs see only the folders already indexed; how long to wait for it
        # (wait_ready) is the caller's choice. Explicit files are judged path by path regardless.

        include = set(agent.include or DEFAULT_INCLUDE)
        open_paths = buffers.open_paths()
        open_set = set(open_paths)
        seen: set[Path] = set()
        candidates: list[_Candidate] = []

        selection_text = ""
        if request.selection is not None and "selection" in include:
            sel = await self._selection(request.selection, buffers, open_set)
            if sel is not None:
                candidates.append(sel)
                seen.add(sel.path)
                if sel.reason is None and sel.data is not None:
                    selection_text = self._secrets.redact(sel.data).data.decode("utf-8")
        if request.active_file is not None and "active_file" in include:
            candidates.append(
                self._explicit(request.active_file, "active_file", buffers, open_set, seen)
            )
        for path in request.files:
            candidates.append(self._explicit(path, "file", buffers, open_set, seen))
        if "open_files" in include:
            for path in open_paths:
                candidates.append(self._explicit(path, "open_file", buffers, open_set, seen))
        if agent.context:
            candidates.extend(await self._globbed(agent.context, buffers, open_set, seen))

        values = self._values(agent, request, selection_text)
        body = agent.body.encode("utf-8", "replace")
        body_redaction = self._secrets.redact(body) if self._scan_secrets else Redaction(body, ())
        clean_body = body_redaction.data.decode("utf-8") if body_redaction.findings else agent.body
        copilot = agent.format in COPILOT_FORMATS
        fixed_size = expanded_size(clean_body, values, request.variables, copilot=copilot) + len(
            request.task.encode("utf-8", "surrogatepass")
        )
        limit = prompt_bytes_limit(max_context_tokens, max_prompt_bytes)
        if fixed_size > limit:
            raise PromptTooLarge(fixed_size, limit)
        system = self._system_prompt(agent, values, request.variables, clean_body)
        task_block = f"<task>\n{request.task}\n</task>\n".encode("utf-8", "replace")
        # render_prompt's layout, as bytes: the system part and a blank line, then the user part
        head = system.rstrip().encode("utf-8", "replace") + b"\n\n" if system.strip() else b""
        system_bytes = len(head) - 2 if head else 0
        fixed = len(head) + len(task_block)
        limit = bytes_within(max_context_tokens, bytes_per_token)
        signature = (
            system,
            task_block,
            max_files,
            limit,
            bytes_per_token,
            [
                (c.path, c.source, c.display, c.reason, c.size, c.data, c.lines, c.first_line)
                for c in candidates
            ],
        )
        last = self._last
        if last is not None and last.signature == signature and self._cache.still_holds(last.files):
            return last.result
        self._last = None
        blocks, manifest, files = await self._attach(
            candidates,
            max_files=max_files,
            limit=limit,
            used=fixed,
            bytes_per_token=bytes_per_token,
        )
        blocks[0] = head
        blocks.append(task_block)
        prompt_bytes = b"".join(blocks)
        result = ContextResult(
            system=system,
            prompt_bytes=prompt_bytes,
            user_start=len(head),
            manifest=manifest,
            tokens=estimate_tokens(len(prompt_bytes), bytes_per_token),
            definition=ManifestEntry(
                self._roots.display(agent.source),
                "agent",
                "included",
                None,
                system_bytes,
                len(body),
                estimate_tokens(system_bytes, bytes_per_token),
                tuple((f.line + agent.body_line, f.kind) for f in body_redaction.findings),
            ),
        )
        if files is not None:
            self._last = _Assembly(signature, files, result)
        return result

    def _values(
        self, agent: AgentDefinition, request: ContextRequest, selection: str
    ) -> dict[str, str]:
        """The values of the body's variables: the request's own, then the built-in ones."""
        folders = self._roots.folders
        active = request.active_file
        values = dict(request.variables)
        values.update(
            task=request.task,
            agent=agent.name,
            workspace=folders[0].name if folders else "",
            file=self._roots.display(active) if active is not None else "",
            selection=selection,
        )
        return values

    @staticmethod
    def _system_prompt(
        agent: AgentDefinition,
        values: Mapping[str, str],
        inputs: Mapping[str, str] | None = None,
        body: str | None = None,
    ) -> str:
        """The agent's body (``body``: its redacted text) with the variables filled in, in one pass.

        Copilot files also get Copilot's ``${...}`` variables; ``inputs`` (the request's own
        variables) fill ``${input:x}``, whose presence ``build`` checked.
        """
        copilot = agent.format in COPILOT_FORMATS
        pattern = _VARIABLE_OR_COPILOT if copilot else _VARIABLE
        editor = _copilot_values(values) if copilot else {}

        def fill(m: re.Match[str]) -> str:
            """A known variable's value; an unknown one stays as written."""
            value = _value_of(m, values, inputs or {}, editor)
            return m.group(0) if value is None else value

        return pattern.sub(fill, agent.body if body is None else body)

    async def _selection(
        self, selection: Selection, buffers: BufferSource, open_set: set[Path]
    ) -> _Candidate | None:
        """The selection as a candidate with its text, or None when it is empty."""
        if (selection.start_line, selection.start_character) == (
            selection.end_line,
            selection.end_character,
        ):
            return None
        path = selection.path
        cand = self._explicit(path, "selection", buffers, open_set, set())
        if cand.reason is not None:
            return cand
        if cand.data is not None:
            text = cand.data.decode("utf-8")
        else:
            got = (await self._cache.read_many([path], max_file_bytes=self._max_file_bytes))[path]
            if not isinstance(got, CachedFile):
                cand.reason = got
                return cand
            cand.size = got.size
            text = got.data.decode("utf-8")
        chosen, first, last = extract_selection(text, selection)
        cand.data = chosen.encode("utf-8", "replace")
        cand.lines = f"{first}-{last}"
        cand.first_line = first
        return cand

    def _explicit(
        self,
        path: Path,
        source: str,
        buffers: BufferSource,
        open_set: set[Path],
        seen: set[Path],
    ) -> _Candidate:
        """A file named by the editor or the request, judged before anything is read."""
        cand = _Candidate(path=path, source=source, display=self._roots.display(path))
        if path in seen:
            cand.reason = "duplicate"
            return cand
        seen.add(path)
        reason: str | None = self._index.exclusion(path)
        text = None
        if path in open_set and (reason is None or reason in _OVERRIDABLE_BY_BUFFER):
            text = buffers.text(path)
        if text is not None:
            data = text.encode("utf-8", "replace")
            cand.size = len(data)
            if len(data) > self._max_file_bytes:
                reason = "too_large"
            elif looks_binary(data):
                reason = "binary"
            else:
                reason = None
                cand.data = data
        elif reason != "outside_workspace":
            cand.size = self._index.known_size(path) or 0
        cand.reason = reason
        return cand

    async def _globbed(
        self,
        patterns: tuple[str, ...],
        buffers: BufferSource,
        open_set: set[Path],
        seen: set[Path],
    ) -> list[_Candidate]:
        """The agent's globs over every folder: usable files newest first, then excluded ones.

        Matching hands the loop back between slices (``WorkspaceIndex.expand``), so a ``**/*``
        over a huge tree does not stall the requests that arrive meanwhile.
        """
        entries: list[FileEntry] = []
        left_out: list[tuple[Path, str]] = []
        for folder in self._roots.folders:
            found, excluded = await self._index.expand(folder, patterns)
            entries.extend(found)
            left_out.extend(excluded)
        # Newest first, then by name: two stable C-keyed sorts cost a third of one tuple-keyed
        # sort, which held the loop for 60 ms over 100,000 files.
        entries.sort(key=_REL)
        entries.sort(key=_MTIME, reverse=True)
        display_rel = self._roots.display_rel
        out: list[_Candidate] = []
        for n, entry in enumerate(entries, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            path = entry.path
            cand = _Candidate(path, "glob", display_rel(entry.folder, entry.rel), entry.size)
            if path in seen:
                cand.reason = "duplicate"
            else:
                seen.add(path)
                if path in open_set:
                    text = buffers.text(path)
                    if text is not None:
                        data = text.encode("utf-8", "replace")
                        cand.size = len(data)
                        if len(data) > self._max_file_bytes:
                            cand.reason = "too_large"
                        elif looks_binary(data):
                            cand.reason = "binary"
                        else:
                            cand.data = data
            out.append(cand)
        for path, reason in sorted(left_out, key=lambda pr: pr[0]):
            if path in seen:
                continue
            seen.add(path)
            size = self._index.known_size(path) if reason != "outside_workspace" else None
            out.append(_Candidate(path, "glob", self._roots.display(path), size or 0, reason))
        return out

    async def _attach(
        self,
        candidates: list[_Candidate],
        *,
        max_files: int,
        limit: int,
        used: int,
        bytes_per_token: float,
    ) -> tuple[list[bytes], list[ManifestEntry], tuple[tuple[Path, CachedFile], ...] | None]:
        """Fill the budgets in candidate order; read the disk in batches of what may fit.

        Returns:
            The blocks (after an empty first one, the caller's slot for the system part), the
            manifest, and the cache entries whose content was used; None instead
            of the entries when a read failed (a verdict such as ``missing`` cannot be
            revalidated by a ``stat`` of an entry, so that build is not kept for reuse).
        """
        blocks: list[bytes] = [b""]  # the caller's slot for the system part
        manifest: list[ManifestEntry] = []
        contents: dict[Path, CachedFile | str] = {}
        used_files: list[tuple[Path, CachedFile]] = []
        reusable = True
        attached = 0
        for i, cand in enumerate(candidates):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a glob over a huge tree: let other requests in
            if cand.reason is None and attached >= max_files:
                cand.reason = "max_files"
            if cand.reason is not None:
                manifest.append(_excluded(cand, cand.reason))
                continue
            if cand.source == "selection":
                head = (f'<selection path="{_attr(cand.display)}" lines="{cand.lines}">\n').encode()
                tail = b"</selection>\n\n"
            else:
                head = f'<file path="{_attr(cand.display)}" source="{cand.source}">\n'.encode()
                tail = b"</file>\n\n"
            room = limit - used - len(head) - len(tail)
            data = cand.data
            content_hash: int | None = None
            redaction: Redaction | None = None
            if data is None and cand.size and cand.size > room and room < TRUNCATE_MIN_BYTES:
                data = b""  # known not to fit, and no useful part would: spare the read
                cand.reason = "budget"
            elif data is None:
                if cand.path not in contents:
                    batch = self._next_batch(
                        candidates, i, max_files - attached, limit - used, contents
                    )
                    contents.update(
                        await self._cache.read_many(batch, max_file_bytes=self._max_file_bytes)
                    )
                got = contents[cand.path]
                if isinstance(got, str):
                    cand.reason = got
                    reusable = False
                else:
                    used_files.append((cand.path, got))
                    data = got.data
                    content_hash = got.hash
                    redaction = got.secrets
                    cand.size = got.size
            if cand.reason is not None or data is None:
                manifest.append(_excluded(cand, cand.reason or "unreadable"))
                continue
            if not self._scan_secrets:
                redaction = Redaction(data, ())
            elif redaction is None:  # a buffer, the selection, or a load that did not scan
                redaction = self._secrets.redact(data, content_hash)
            data = redaction.data
            newline = b"" if not data or data.endswith(b"\n") else b"\n"
            pieces: tuple[bytes, ...]
            if len(data) + len(newline) <= room:
                # Pieces, not a joined block: the one join at the end copies each file once.
                pieces = (head, data, newline, tail)
                status, reason, shown = "included", None, len(data)
                found = redaction.findings
            else:
                total_lines = _line_count(data)
                avail = room - len(_marker(total_lines, total_lines))
                cut = data.rfind(b"\n", 0, avail) + 1 if avail > 0 else 0
                if cut < TRUNCATE_MIN_BYTES:
                    manifest.append(_excluded(cand, "budget"))
                    continue
                shown = cut
                marker = _marker(data.count(b"\n", 0, cut), total_lines)
                pieces = (head, data[:cut], marker, tail)
                status, reason = "truncated", "budget"
                found = tuple(f for f in redaction.findings if f.start < cut)
            block_len = len(head) + len(pieces[1]) + len(pieces[2]) + len(tail)
            used += block_len
            attached += 1
            blocks.extend(pieces)
            manifest.append(
                ManifestEntry(
                    cand.display,
                    cand.source,
                    status,
                    reason,
                    shown,
                    cand.size or len(data),
                    estimate_tokens(block_len, bytes_per_token),
                    tuple((f.line + cand.first_line - 1, f.kind) for f in found) if found else (),
                )
            )
        return blocks, manifest, tuple(used_files) if reusable else None

    @staticmethod
    def _next_batch(
        candidates: list[_Candidate],
        start: int,
        slots: int,
        room: int,
        done: Mapping[Path, object],
    ) -> list[Path]:
        """The files from ``start`` on worth reading now: as many as may still fit."""
        batch: list[Path] = []
        predicted = 0
        limit = slots + _READ_SLACK
        for cand in candidates[start:]:
            if cand.reason is not None or cand.data is not None or cand.path in done:
                continue
            batch.append(cand.path)
            predicted += cand.size
            if len(batch) >= limit or predicted > room:
                break
        return batch
