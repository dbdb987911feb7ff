"""Editor buffers and diagnostics: the LSP side of what the service reads and reports.

Open buffers are owned by pygls' ``Workspace`` (it applies didOpen/didChange before our handlers
run); ``EditorBuffers`` only reads them for the context builder, so unsaved text wins over disk.
Agent-definition problems are published from one function, ``publish_problems``; the keys of an
untrusted workspace's ``agentls.toml`` that were ignored, from ``publish_ignored_settings``.
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


PUBLISH_BATCH = 100
"""Files published per loop turn: a collection of 1,000 agents loading must not hold up the
requests (the first ``agents.list``) queued behind its diagnostics."""


def publish_problems(ls: AgentLanguageServer, paths: set[Path]) -> None:
    """Publish the current problems of each definition file (an empty list clears them).

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
    if service is None:
        return
    documents = ls.workspace.text_documents
    codec = ls.workspace.position_codec
    for path in paths:
        uri = from_fs_path(str(path)) or path.as_uri()
        problems = service.registry.problems(path)
        lines: Sequence[str] = ()
        if problems:
            document = documents.get(unquote(uri))
            if document is not None:
                lines = document.lines
            else:
                text = service.registry.text(path)
                lines = tuple(text.splitlines(True)) if text else ()
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=[to_diagnostic(p, lines, codec) for p in problems],
            )
        )


def open_text(ls: AgentLanguageServer, uri: str) -> str | None:
    """The text of a document the editor has open; None when it is not open.

    ``Workspace.get_text_document`` would make up a document for an unknown URI whose text is
    read from disk on first use, unchecked; this never touches the disk.
    """
    document = ls.workspace.text_documents.get(unquote(uri))
    return None if document is None else document.source


def publish_ignored_settings(
    ls: AgentLanguageServer, ignored: Sequence[IgnoredSetting], previous: set[Path]
) -> set[Path]:
    """A warning per ignored key on its ``agentls.toml`` (first line: the file is not read again
    for positions); files in ``previous`` that have none left get an empty list. Returns the
    files that now carry warnings."""
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
    for path in sorted(previous | by_file.keys()):
        uri = from_fs_path(str(path)) or path.as_uri()
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=by_file.get(path, []))
        )
    return set(by_file)
