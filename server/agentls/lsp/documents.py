"""Editor buffers and diagnostics: the LSP side of what the service reads and reports.

Open buffers are owned by pygls' ``Workspace`` (it applies didOpen/didChange before our handlers
run); ``EditorBuffers`` only reads them for the context builder, so unsaved text wins over disk.
Agent-definition problems, agents' findings and the keys of an untrusted workspace's
``agentls.toml`` that were ignored are all published from one place, ``_publish``: one
``publishDiagnostics`` per file carries every kind, since a later publish for a URI replaces the
earlier one (a finding on ``agentls.toml`` must not wipe its ignored-key warnings, nor the reverse).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace.position_codec import PositionCodec

if TYPE_CHECKING:
    from agentls.agents.definition import Problem
    from agentls.config import IgnoredSetting
    from agentls.findings import Finding
    from agentls.lsp.server import AgentLanguageServer

_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def uri_to_path(uri: str) -> Path | None:
    """The realpath of a ``file:`` URI, or None for other schemes."""
    fs = to_fs_path(uri)
    if not fs or not uri.startswith("file:"):
        return None
    return Path(os.path.realpath(fs))


class EditorBuffers:
    """A ``BufferSource`` over the editor's open documents (read-only view of pygls' workspace)."""

    def __init__(self, ls: AgentLanguageServer) -> None:
        self._ls = ls
        self._memo: tuple[tuple[str, ...], dict[Path, str]] = ((), {})
        """The open URIs last seen, and their realpaths: resolving costs syscalls, and the
        builder asks once per open file, so it is redone only when the set of open files changes."""

    def _by_path(self) -> dict[Path, str]:
        uris = tuple(self._ls.workspace.text_documents)
        if uris != self._memo[0]:
            out: dict[Path, str] = {}
            for uri in uris:
                path = uri_to_path(uri)
                if path is not None:
                    out[path] = uri
            self._memo = (uris, out)
        return self._memo[1]

    def text(self, path: Path) -> str | None:
        """The buffer's text when the file is open in the editor."""
        uri = self._by_path().get(path)
        if uri is None:
            return None
        text: str = self._ls.workspace.text_documents[uri].source
        return text

    def uri_of(self, path: Path) -> str | None:
        """The URI the editor opened a file by (it may name it through a symlink), if open."""
        return self._by_path().get(path)

    def open_paths(self) -> list[Path]:
        """Every open file, in the order the editor opened them."""
        return list(self._by_path())

    def is_open(self, path: Path) -> bool:
        """Whether the editor holds this file (its text overrides disk)."""
        return path in self._by_path()


END_OF_LINE = 1_000_000
"""A column past any real line: the codec clamps it to the line's end."""


def to_diagnostic(problem: Problem, lines: Sequence[str], codec: PositionCodec) -> types.Diagnostic:
    """A definition problem as an LSP diagnostic (to the end of the line when no end is known).

    ``Problem`` columns count code points; the client counts in its negotiated encoding (UTF-16
    by default), so columns are converted against the document's own lines.
    """
    end_line = problem.end_line if problem.end_line is not None else problem.line
    end_col = problem.end_column if problem.end_column is not None else END_OF_LINE
    start = types.Position(line=problem.line, character=problem.column)
    end = types.Position(line=end_line, character=end_col)
    if lines:
        start = codec.position_to_client_units(lines, start)
        end = codec.position_to_client_units(lines, end)
    elif end.character == END_OF_LINE:
        end = types.Position(line=end_line + 1, character=0)
    return types.Diagnostic(
        range=types.Range(start=start, end=end),
        message=problem.message,
        severity=_SEVERITY.get(problem.severity, types.DiagnosticSeverity.Error),
        source="agentls",
    )


def finding_range(finding: Finding, lines: Sequence[str], codec: PositionCodec) -> types.Range:
    """Where a finding sits, in the client's units, with lines past the end of the file clamped.

    A finding without a column starts at the line's first non-blank character; without an end it
    runs to the end of its (last) line. Columns count code points and are converted against the
    document's own lines (UTF-16 for most clients, UTF-8 for Neovim 0.11).
    """
    if not lines:
        line = finding.line
        return types.Range(
            start=types.Position(line=line, character=0),
            end=types.Position(line=line + 1, character=0),
        )
    last = len(lines) - 1

    def text(n: int) -> str:
        return lines[n].rstrip("\r\n")

    line = min(finding.line, last)
    end_line = min(max(finding.end_line if finding.end_line is not None else line, line), last)
    first = text(line)
    if finding.column is not None:
        start_col = min(finding.column, len(first))
    else:
        start_col = len(first) - len(first.lstrip())
    end_text = text(end_line)
    if finding.end_column is not None:
        end_col = min(finding.end_column, len(end_text))
    else:
        end_col = len(end_text)
    if end_line == line and end_col <= start_col:
        end_col = len(end_text)
    start = codec.position_to_client_units(lines, types.Position(line=line, character=start_col))
    end = codec.position_to_client_units(lines, types.Position(line=end_line, character=end_col))
    return types.Range(start=start, end=end)


def finding_diagnostic(
    finding: Finding, lines: Sequence[str], codec: PositionCodec
) -> types.Diagnostic:
    """A finding as a diagnostic: ``source`` names the agent, ``code`` is the run id."""
    return types.Diagnostic(
        range=finding_range(finding, lines, codec),
        message=finding.message,
        severity=_SEVERITY.get(finding.severity, types.DiagnosticSeverity.Warning),
        source=f"agentls: {finding.agent}",
        code=finding.run_id,
    )


PUBLISH_BATCH = 100
"""Files published per loop turn: a collection of 1,000 agents loading must not hold up the
requests (the first ``agents.list``) queued behind its diagnostics."""


def publish_problems(ls: AgentLanguageServer, paths: set[Path]) -> None:
    """Publish each file's definition problems, findings and configuration warnings (an empty
    list clears them).

    Beyond ``PUBLISH_BATCH`` files the rest follow in later loop turns. Each publish reads the
    problems when it is sent, so a later change to a file is never overtaken by a stale batch.
    Positions are converted against the open buffer, or else against the text the registry
    parsed. Never against pygls' own fallback, which reads the whole file from disk on the event
    loop with no size or type check (a FIFO there hung the server; a 400 MB file was read).
    """
    ordered = sorted(paths)
    _publish(ls, ordered[:PUBLISH_BATCH])
    if len(ordered) > PUBLISH_BATCH:
        rest = set(ordered[PUBLISH_BATCH:])
        asyncio.get_running_loop().call_soon(publish_problems, ls, rest)


def _publish(ls: AgentLanguageServer, paths: list[Path]) -> None:
    service = ls.service
    documents = ls.workspace.text_documents
    codec = ls.workspace.position_codec
    for path in paths:
        uri = from_fs_path(str(path)) or path.as_uri()
        problems = service.registry.problems(path) if service is not None else []
        findings = service.findings_for(path) if service is not None else []
        lines: Sequence[str] = ()
        if service is not None and (problems or findings):
            document = documents.get(unquote(uri))
            if document is not None:
                lines = document.lines
            else:
                text = service.file_text(path)
                lines = tuple(text.splitlines(True)) if text else ()
        diagnostics = [to_diagnostic(p, lines, codec) for p in problems]
        diagnostics.extend(finding_diagnostic(f, lines, codec) for f in findings)
        diagnostics.extend(ls.config_diagnostics.get(path, ()))
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )


def open_text(ls: AgentLanguageServer, uri: str) -> str | None:
    """The text of a document the editor has open; None when it is not open.

    ``Workspace.get_text_document`` would make up a document for an unknown URI whose text is
    read from disk on first use, unchecked; this never touches the disk.
    """
    document = ls.workspace.text_documents.get(unquote(uri))
    return None if document is None else document.source


def publish_ignored_settings(ls: AgentLanguageServer, ignored: Sequence[IgnoredSetting]) -> None:
    """A warning per ignored key on its ``agentls.toml`` (first line: the file is not read again
    for positions), published with the file's other diagnostics; a file that had warnings and has
    none left is published again without them."""
    by_file: dict[Path, list[types.Diagnostic]] = {}
    for item in ignored:
        by_file.setdefault(item.file, []).append(
            types.Diagnostic(
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=1, character=0),
                ),
                message=f"{item.key} ignored: {item.reason}",
                severity=types.DiagnosticSeverity.Warning,
                source="agentls",
            )
        )
    previous = set(ls.config_diagnostics)
    ls.config_diagnostics = by_file
    _publish(ls, sorted(previous | by_file.keys()))
