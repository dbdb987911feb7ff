"""The tools a model may call, and the only way they reach the workspace.

Three groups, all safe by construction: ``read`` (``read_file``), ``search`` (``list_files``,
``search``) and ``edit`` (``propose_edit``, which only proposes: the server never writes). What an
agent gets comes from its ``tools`` front matter (``granted_groups``).

Every file a tool shows the model goes through ``Toolbox.read_texts``, the same path attached
context takes: the workspace index's judgement (outside the folders, deny-listed secret files,
``.gitignore``/``.agentlsignore``, too large, not a regular file), the unsaved buffer over the
disk, the shared file cache and loader (binary files refused), and secret redaction. A refused call
is answered to the model as a tool error it can recover from; it never fails the run. Results are
cut at ``max_result_bytes``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from agentls.agents.definition import AgentDefinition
from agentls.agents.tools import OFFERED_GROUPS
from agentls.backends.base import ToolCall, ToolSpec
from agentls.context.builder import BufferSource
from agentls.context.secrets import Finding, SecretScanner
from agentls.errors import AgentlsError
from agentls.findings import REPORT_FINDING_TOOL, FindingError
from agentls.tools.edits import ProposedEdit, propose
from agentls.workspace.cache import CachedFile, FileCache
from agentls.workspace.filters import looks_binary
from agentls.workspace.index import FileEntry, WorkspaceIndex
from agentls.workspace.roots import WorkspaceRoots

ToolStatus = Literal["succeeded", "refused", "failed"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

GROUPS: tuple[str, ...] = OFFERED_GROUPS
"""The tool groups agentls offers."""

READ_FILE, LIST_FILES, SEARCH, PROPOSE_EDIT = "read_file", "list_files", "search", "propose_edit"

DEFAULT_READ_LINES = 2000
"""Lines ``read_file`` shows when the model gives no ``limit``."""
MAX_LISTED = 1000
"""Paths ``list_files`` shows at most."""
MAX_MATCHES = 200
"""Matching lines ``search`` shows at most."""
MAX_SEARCHED_FILES = 5000
"""Files one ``search`` reads at most (the rest is reported as not searched)."""
SEARCH_BATCH = 256
"""Files ``search`` reads per turn of the event loop."""
MAX_PATTERN_CHARS = 500
MATCH_LINE_CHARS = 240
"""A matching line is shown up to this many characters."""
ARGUMENT_CHARS = 200
"""How much of each argument the run's trace keeps."""


def granted_groups(agent: AgentDefinition) -> frozenset[str]:
    """The tool groups an agent may use, from its ``tools`` front matter.

    No ``tools`` key: every group (they are all safe, as Claude Code grants every tool when
    ``tools`` is left out); ``tools: []``: none. Otherwise the groups of ``GROUPS`` among the
    definition's normalised ``tool_groups`` (``agents.tools``: Claude Code's and Copilot's names);
    the rest (``execute``, ``web``, MCP tools...) is never granted, and the definition has a hint
    saying so.
    """
    if agent.tools is None:
        return frozenset(GROUPS)
    return frozenset(agent.tool_groups).intersection(GROUPS)


_SPECS: dict[str, tuple[str, ToolSpec]] = {
    READ_FILE: (
        "read",
        ToolSpec(
            READ_FILE,
            "Read a text file of the workspace. Returns numbered lines (line number, a tab, the "
            "line). Paths are relative to the workspace folder.",
            {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "path relative to the workspace"},
                    "offset": {"type": "integer", "description": "first line to show (1-based)"},
                    "limit": {"type": "integer", "description": "how many lines to show"},
                },
                "required": ["path"],
            },
        ),
    ),
    LIST_FILES: (
        "search",
        ToolSpec(
            LIST_FILES,
            "List the workspace's files (ignored and secret files are left out), optionally "
            "only those matching a gitignore-style glob such as 'src/**/*.py'.",
            {
                "type": "object",
                "properties": {"glob": {"type": "string"}},
            },
        ),
    ),
    SEARCH: (
        "search",
        ToolSpec(
            SEARCH,
            "Search the workspace's files for a text (or a Python regular expression when regex "
            "is true). Returns matching lines as path:line: text.",
            {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "glob": {"type": "string", "description": "only files matching this glob"},
                    "regex": {"type": "boolean"},
                },
                "required": ["pattern"],
            },
        ),
    ),
    PROPOSE_EDIT: (
        "edit",
        ToolSpec(
            PROPOSE_EDIT,
            "Propose replacing old_text, which must occur exactly once in the file, with "
            "new_text; an empty old_text proposes a new file. Nothing is written: the user reviews "
            "and applies the edit in the editor. Edits of one run all apply to the current file, "
            "so they must not overlap.",
            {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "old_text": {"type": "string"},
                    "new_text": {"type": "string"},
                },
                "required": ["path", "old_text", "new_text"],
            },
        ),
    ),
}

REPORT_FINDING = str(REPORT_FINDING_TOOL["name"])
_REPORT_FINDING = ToolSpec(
    REPORT_FINDING,
    str(REPORT_FINDING_TOOL["description"]),
    dict(REPORT_FINDING_TOOL["parameters"]),
)
"""Offered (beside the granted groups) to ``output: diagnostics`` runs only."""

_REASONS: dict[str, str] = {
    "outside_workspace": "is outside the workspace folders",
    "secret": "is a secret file (deny-listed); its content is never shown",
    "gitignored": "is ignored by .gitignore",
    "agentlsignored": "is ignored by .agentlsignore",
    "too_large": "is larger than the file size limit",
    "binary": "is a binary file",
    "missing": "does not exist",
    "not_a_file": "is not a regular file",
    "unreadable": "cannot be read",
    "invalid": "is not a valid path",
}


@dataclass(frozen=True)
class FileText:
    """A workspace file as a tool sees it."""

    path: Path
    text: str
    """The real text (what an edit is computed against)."""
    shown: str
    """The text with its secrets redacted: the only form the model ever receives."""
    findings: tuple[Finding, ...]
    size: int


@dataclass
class ToolOutcome:
    """What one call did: the answer for the model, a line for the user, what it read."""

    status: ToolStatus
    content: str
    """What the model receives (an error text for a refused or failed call)."""
    summary: str
    """One line for the user ("read src/app.py (lines 1-40)")."""
    reads: list[dict[str, Any]] = field(default_factory=list)
    """Manifest entries (``source: "tool"``) for the files whose content the model saw."""
    edit: ProposedEdit | None = None


class _Refusal(Exception):
    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary or f"refused: {message}"


class Toolbox:
    """The tools of one run, over the server's workspace services and the editor's buffers."""

    def __init__(
        self,
        groups: frozenset[str],
        *,
        roots: WorkspaceRoots,
        index: WorkspaceIndex,
        cache: FileCache,
        buffers: BufferSource,
        scanner: SecretScanner,
        max_file_bytes: int,
        max_result_bytes: int,
    ) -> None:
        """Tools of ``groups`` only; everything else is how they reach the workspace."""
        self.groups = groups
        self._roots = roots
        self._index = index
        self._cache = cache
        self._buffers = buffers
        self._scanner = scanner
        self._max_file_bytes = max_file_bytes
        self._max_result_bytes = max(1024, max_result_bytes)
        self._edits: list[ProposedEdit] = []
        """Edits proposed so far in this run (ids, overlaps)."""
        self.reporter: Callable[[Mapping[str, Any]], str] | None = None
        """Where ``report_finding`` calls go (an ``output: diagnostics`` run's
        ``FindingCollector.report``); None: the tool is not offered."""

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools offered to the model (``report_finding`` to a diagnostics run)."""
        offered = tuple(spec for group, spec in _SPECS.values() if group in self.groups)
        return (*offered, _REPORT_FINDING) if self.reporter is not None else offered

    def describe(self, call: ToolCall) -> str:
        """A line saying what a call is about to do ("reading src/app.py")."""
        args = _arguments(call.arguments)
        what = args.get("path") or args.get("pattern") or args.get("glob") or ""
        verb = {
            READ_FILE: "reading",
            LIST_FILES: "listing files",
            SEARCH: "searching",
            PROPOSE_EDIT: "proposing an edit to",
        }.get(call.name, call.name)
        return f"{verb} {_short(str(what), 80)}".strip() if isinstance(what, str) else verb

    def trace_arguments(self, call: ToolCall) -> dict[str, Any] | str:
        """The call's arguments for the trace: each string shortened, secrets redacted."""
        args = _arguments(call.arguments)
        if not args and call.arguments.strip() not in ("", "{}"):
            return self._redact(_short(call.arguments, ARGUMENT_CHARS))
        return {
            k: self._redact(_short(v, ARGUMENT_CHARS)) if isinstance(v, str) else v
            for k, v in args.items()
        }

    async def call(self, call: ToolCall) -> ToolOutcome:
        """Run one call. Never raises for the model's mistakes: they are refused outcomes."""
        if call.name == REPORT_FINDING and self.reporter is not None:
            return self._report_finding(call)
        spec = _SPECS.get(call.name)
        if spec is None or spec[0] not in self.groups:
            offered = ", ".join(s.name for s in self.specs) or "none"
            return _refused(f"no tool named {call.name!r}; the tools are: {offered}")
        try:
            args = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            return ToolOutcome(
                "failed",
                "error: the arguments are not valid JSON; call the tool again with a JSON object",
                f"{call.name}: malformed arguments",
            )
        if not isinstance(args, dict):
            return ToolOutcome(
                "failed",
                "error: the arguments must be a JSON object",
                f"{call.name}: bad arguments",
            )
        try:
            if call.name == READ_FILE:
                return await self._read_file(args)
            if call.name == LIST_FILES:
                return self._list_files(args)
            if call.name == SEARCH:
                return await self._search(args)
            return await self._propose_edit(args)
        except _Refusal as r:
            return ToolOutcome("refused", f"error: {r.message}", r.summary)

    def _report_finding(self, call: ToolCall) -> ToolOutcome:
        """A finding for the editor's diagnostics; a malformed one is explained to the model."""
        assert self.reporter is not None
        try:
            args = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            return ToolOutcome(
                "failed",
                "error: the arguments must be a JSON object",
                f"{REPORT_FINDING}: bad arguments",
            )
        where = f"{_short(str(args.get('path', '')), 80)}:{args.get('line', '?')}"
        try:
            answer = self.reporter(args)
        except FindingError as e:
            return ToolOutcome("refused", f"error: {e}", f"{REPORT_FINDING} {where}: refused")
        status: ToolStatus = "succeeded" if answer == "recorded" else "refused"
        return ToolOutcome(status, answer, f"{REPORT_FINDING} {where}: {answer}")

    # -- the one way to the workspace ------------------------------------------------------------

    async def read_texts(
        self, paths: Sequence[Path], *, listed: bool = False
    ) -> dict[Path, FileText | str]:
        """Files as tools see them, or why each may not be shown (an ``_REASONS`` key).

        Attached context's path: the index's verdict, the unsaved buffer over the disk, then the
        file cache and loader, which open every file through the safe reader
        (``workspace.reader.read_regular``) judged against the workspace folders at the read
        (outside them or deny-listed: refused even if the index's verdict is stale), and the
        secret scanner.

        Args:
            paths: realpaths.
            listed: the paths are the index's usable entries (as the context builder's globs
                are), so its verdict stands; otherwise each path is judged now.
        """
        out: dict[Path, FileText | str] = {}
        from_disk: list[Path] = []
        for path in paths:
            reason: str | None = None if listed else self._index.exclusion(path)
            text = None
            if reason in (None, "missing", "too_large"):
                text = self._buffers.text(path)
            if text is not None:
                data = text.encode("utf-8", "replace")
                if len(data) > self._max_file_bytes:
                    out[path] = "too_large"
                elif looks_binary(data):
                    out[path] = "binary"
                else:
                    out[path] = self._file_text(path, data, len(data), None)
            elif reason is not None:
                out[path] = reason
            else:
                from_disk.append(path)
        if from_disk:
            loaded = await self._cache.read_many(from_disk, max_file_bytes=self._max_file_bytes)
            for path, got in loaded.items():
                if isinstance(got, CachedFile):
                    out[path] = self._file_text(path, got.data, got.size, got)
                else:
                    out[path] = got
        return out

    def _file_text(self, path: Path, data: bytes, size: int, cached: CachedFile | None) -> FileText:
        redaction = cached.secrets if cached is not None else None
        if redaction is None:
            redaction = self._scanner.redact(data, cached.hash if cached is not None else None)
        text = data.decode("utf-8", "replace")
        shown = text if redaction.data is data else redaction.data.decode("utf-8", "replace")
        return FileText(path, text, shown, redaction.findings, size)

    def _redact(self, text: str) -> str:
        data = text.encode("utf-8", "replace")
        return self._scanner.redact(data).data.decode("utf-8", "replace")

    def _resolve(self, raw: Any, what: str = "path") -> Path:
        """A path the model gave, as a realpath inside the workspace (or a refusal)."""
        if not isinstance(raw, str) or not raw.strip():
            raise _Refusal(f"{what} must be a non-empty string")
        ref = raw.strip()
        folders = self._roots.folders
        if len(folders) > 1 and not ref.startswith("/"):
            head, _, rest = ref.partition("/")
            named = [f for f in folders if f.name == head]
            if named and rest:
                ref = str(named[0] / rest)
        try:
            return self._roots.resolve(ref)
        except AgentlsError:
            raise _Refusal(f"{_short(raw, 80)} {_REASONS['outside_workspace']}") from None

    async def _one(self, raw: Any) -> tuple[Path, FileText | str]:
        path = self._resolve(raw)
        return path, (await self.read_texts([path]))[path]

    # -- the tools ---------------------------------------------------------------------------------

    async def _read_file(self, args: dict[str, Any]) -> ToolOutcome:
        path, got = await self._one(args.get("path"))
        shown_path = self._roots.display(path)
        if isinstance(got, str):
            raise _Refusal(f"{shown_path} {_REASONS.get(got, got)}")
        offset = _positive(args.get("offset"), "offset", 1)
        limit = _positive(args.get("limit"), "limit", DEFAULT_READ_LINES)
        lines = _lines(got.shown)
        total = len(lines)
        first = min(offset, total + 1)
        chosen = lines[first - 1 : first - 1 + limit]
        width = len(str(first + len(chosen)))
        parts: list[str] = []
        used = 0
        last = first - 1
        for n, line in enumerate(chosen, start=first):
            piece = f"{n:>{width}}\t{line}\n"
            size = len(piece.encode("utf-8", "replace"))
            if used + size > self._max_result_bytes - 200:
                break
            parts.append(piece)
            used += size
            last = n
        body = "".join(parts)
        if total == 0:
            body = "(empty file)\n"
        elif last < total:
            body += (
                f"[lines {first}-{last} of {total} shown; call read_file with offset={last + 1} "
                "for more]\n"
            )
        findings = tuple(f for f in got.findings if first <= f.line <= last)
        read = _manifest_read(shown_path, used, got.size, findings)
        summary = f"read {shown_path} (lines {first}-{last})" if total else f"read {shown_path}"
        return ToolOutcome("succeeded", body, summary, [read])

    def _entries(self, glob: Any) -> list[FileEntry]:
        if glob is not None and (not isinstance(glob, str) or not glob.strip()):
            raise _Refusal("glob must be a non-empty string")
        entries: list[FileEntry] = []
        for folder in self._roots.folders:
            if glob is None:
                entries.extend(e for e in self._index.usable() if e.folder == folder)
                continue
            try:
                found, _ = self._index.match(folder, [glob])
            except AgentlsError as e:
                raise _Refusal(f"bad glob: {e.message}") from None
            entries.extend(found)
        entries.sort(key=lambda e: (self._roots.folders.index(e.folder), e.rel))
        return entries

    def _list_files(self, args: dict[str, Any]) -> ToolOutcome:
        entries = self._entries(args.get("glob"))
        display = self._roots.display_rel
        lines: list[str] = []
        used = 0
        for entry in entries[:MAX_LISTED]:
            line = display(entry.folder, entry.rel) + "\n"
            if used + len(line) > self._max_result_bytes - 200:
                break
            lines.append(line)
            used += len(line)
        body = "".join(lines) or "(no files)\n"
        if len(lines) < len(entries):
            body += f"[{len(lines)} of {len(entries)} files listed; narrow the glob]\n"
        return ToolOutcome("succeeded", body, f"listed {len(entries)} files")

    async def _search(self, args: dict[str, Any]) -> ToolOutcome:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise _Refusal("pattern must be a non-empty string")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise _Refusal(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
        regex = args.get("regex", False)
        if not isinstance(regex, bool):
            raise _Refusal("regex must be true or false")
        try:
            compiled = re.compile(pattern if regex else re.escape(pattern))
        except re.error as e:
            raise _Refusal(f"not a valid regular expression: {e}") from None
        entries = self._entries(args.get("glob"))
        searched = [e for e in entries if e.size <= self._max_file_bytes][:MAX_SEARCHED_FILES]
        texts: dict[Path, FileText | str] = {}
        for start in range(0, len(searched), SEARCH_BATCH):  # the loop stays free between batches
            batch = [e.path for e in searched[start : start + SEARCH_BATCH]]
            texts.update(await self.read_texts(batch, listed=True))
            await asyncio.sleep(0)
        display = self._roots.display_rel
        files = []
        for entry in searched:
            text = texts[entry.path]
            if isinstance(text, FileText):
                files.append((display(entry.folder, entry.rel), text))
        literal = None if regex else pattern
        hits = await asyncio.to_thread(_grep, files, compiled.search, literal, MAX_MATCHES + 1)
        lines: list[str] = []
        used = 0
        reads: dict[str, dict[str, Any]] = {}
        for shown, line_no, line in hits[:MAX_MATCHES]:
            piece = f"{shown}:{line_no}: {_short(line, MATCH_LINE_CHARS)}\n"
            if used + len(piece.encode("utf-8", "replace")) > self._max_result_bytes - 200:
                break
            lines.append(piece)
            used += len(piece.encode("utf-8", "replace"))
            row = reads.setdefault(shown, _manifest_read(shown, 0, 0, ()))
            row["bytes"] += len(piece.encode("utf-8", "replace"))
        body = "".join(lines) or "(no matches)\n"
        if len(lines) < len(hits):
            body += f"[only the first {len(lines)} matches shown; narrow the pattern or glob]\n"
        if len(searched) < len(entries):
            skipped = len(entries) - len(searched)
            body += f"[{skipped} files were not searched (too large or too many)]\n"
        summary = f"searched {_short(pattern, 60)!r}: {min(len(hits), len(lines))} matches"
        return ToolOutcome("succeeded", body, summary, list(reads.values()))

    async def _propose_edit(self, args: dict[str, Any]) -> ToolOutcome:
        old_text, new_text = args.get("old_text"), args.get("new_text")
        if not isinstance(old_text, str) or not isinstance(new_text, str):
            raise _Refusal("old_text and new_text must be strings")
        if len(new_text.encode("utf-8", "replace")) > self._max_file_bytes:
            raise _Refusal("new_text is larger than the file size limit")
        path, got = await self._one(args.get("path"))
        shown_path = self._roots.display(path)
        text: str | None
        if isinstance(got, FileText):
            text = got.text
        elif got == "missing":
            text = None
        else:
            raise _Refusal(f"{shown_path} {_REASONS.get(got, got)}")
        pending = [e for e in self._edits if e.uri == path.as_uri()]
        edit = propose(
            f"e{len(self._edits) + 1}",
            path=shown_path,
            uri=path.as_uri(),
            text=text,
            old_text=old_text,
            new_text=new_text,
            pending=pending,
        )
        if isinstance(edit, str):
            raise _Refusal(edit)
        # The diff's context lines come from the real file: redacted like everything shown.
        edit = dataclasses.replace(edit, diff=self._redact(edit.diff))
        self._edits.append(edit)
        verb = "creating" if edit.create else "to"
        return ToolOutcome(
            "succeeded",
            f"edit {edit.id} proposed ({verb} {shown_path}). Nothing was written: the user "
            "reviews and applies it. The file is unchanged, so later edits to it must not overlap "
            "this one.",
            f"proposed edit {edit.id} {verb} {shown_path}",
            edit=edit,
        )


def _grep(
    files: list[tuple[str, FileText]],
    search: Callable[[str], Any],
    literal: str | None,
    limit: int,
) -> list[tuple[str, int, str]]:
    """Matching lines (redacted text only), at most ``limit``; runs in a worker thread.

    A literal pattern first looks through the whole text (one C-speed scan): most files have no
    match and are never split into lines.
    """
    hits: list[tuple[str, int, str]] = []
    for shown, file in files:
        if literal is not None and literal not in file.shown:
            continue
        for n, line in enumerate(_lines(file.shown), start=1):
            if search(line):
                hits.append((shown, n, line))
                if len(hits) >= limit:
                    return hits
    return hits


def _lines(text: str) -> list[str]:
    """The lines of a text as LSP counts them (CR, LF, CRLF; not form feeds or U+2028)."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _refused(message: str) -> ToolOutcome:
    return ToolOutcome("refused", f"error: {message}", f"refused: {message}")


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _positive(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Refusal(f"{name} must be a positive whole number")
    return value


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _manifest_read(
    path: str, shown: int, size: int, findings: tuple[Finding, ...]
) -> dict[str, Any]:
    """A manifest entry for content a tool showed the model."""
    return {
        "path": path,
        "source": "tool",
        "status": "included",
        "reason": None,
        "bytes": shown,
        "size": size,
        "tokens": 0,
        "secrets": [{"line": f.line, "kind": f.kind} for f in findings],
    }
