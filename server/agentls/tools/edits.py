"""Edits a model proposes: computed against one version of a file, never written by the server.

A ``propose_edit`` call becomes a ``ProposedEdit``: an exact replacement of a unique ``old_text``
(or a new file), located as an LSP range (UTF-16 columns, LSP line breaks), with a unified diff to
show and ``base``, a hash of the text it was computed against. The editor applies it through
``workspace/applyEdit`` (``agentls.edits.apply``); before that, the file's current text is hashed
again and an edit whose file changed is refused rather than applied to different text.

This module is pure: text in, edit or refusal out. Reading the file is the toolbox's business.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

EditState = Literal["proposed", "applied", "discarded"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""LSP's line separators (``str.splitlines`` also splits on form feeds and U+2028)."""


@dataclass(frozen=True)
class ProposedEdit:
    """One proposed change to one file, as the run result and history show it."""

    id: str
    """``e1``, ``e2``... in the order the model proposed them."""
    path: str
    """The workspace display path."""
    uri: str
    start: tuple[int, int]
    """0-based line and UTF-16 character where ``old_text`` starts."""
    end: tuple[int, int]
    old_text: str
    new_text: str
    diff: str
    base: str
    """``content_hash`` of the whole file the edit was computed against ("" for a new file)."""
    create: bool = False
    """The file does not exist yet: applying creates it with ``new_text``."""
    offset: int = 0
    """Where ``old_text`` starts in the file, in characters (to spot overlapping proposals)."""

    def to_dict(self) -> dict[str, Any]:
        """The protocol form (``edits[]`` of a run)."""
        return {
            "id": self.id,
            "path": self.path,
            "uri": self.uri,
            "range": {
                "start": {"line": self.start[0], "character": self.start[1]},
                "end": {"line": self.end[0], "character": self.end[1]},
            },
            "old_text": self.old_text,
            "new_text": self.new_text,
            "diff": self.diff,
            "base": self.base,
            "create": self.create,
            "state": "proposed",
        }


def content_hash(text: str | None) -> str:
    """What identifies a version of a file: SHA-256 of its UTF-8 text ("" when it does not exist).

    A hash of the decoded text rather than the bytes, so an unsaved buffer and the same text on
    disk are the same version.
    """
    if text is None:
        return ""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def position(text: str, offset: int) -> tuple[int, int]:
    """The LSP position (line, UTF-16 character) of a character offset in ``text``."""
    line = 0
    line_start = 0
    for match in _LINE_BREAK.finditer(text, 0, offset):
        if match.end() > offset:
            break
        line += 1
        line_start = match.end()
    segment = text[line_start:offset]
    return line, len(segment.encode("utf-16-le", "surrogatepass")) // 2


def propose(
    edit_id: str,
    *,
    path: str,
    uri: str,
    text: str | None,
    old_text: str,
    new_text: str,
    pending: list[ProposedEdit],
) -> ProposedEdit | str:
    """An edit of ``text`` (None: the file does not exist), or why it cannot be proposed.

    Args:
        edit_id: the id the edit gets.
        path: the display path (diff headers, messages).
        uri: the file's URI.
        text: the file's current text, or None when there is no such file.
        old_text: the exact text to replace; empty to create a new file.
        new_text: what replaces it.
        pending: edits already proposed for this file in this run; a new one may not overlap them
            (they all apply to the same version of the file).

    Returns:
        The edit, or a refusal the model can act on.
    """
    if not old_text:
        if text is not None:
            return (
                f"{path} exists; give the exact text to replace in old_text "
                "(an empty old_text creates a new file)"
            )
        if pending:
            return f"a new file {path} is already proposed in this run ({pending[0].id})"
        diff = unified_diff(path, "", new_text, create=True)
        return ProposedEdit(edit_id, path, uri, (0, 0), (0, 0), "", new_text, diff, "", True)
    if text is None:
        return f"{path} does not exist; to create it, give an empty old_text"
    if old_text == new_text:
        return "old_text and new_text are the same; nothing to change"
    count = text.count(old_text)
    if count == 0:
        return (
            f"old_text was not found in {path}; copy it exactly from read_file's output "
            "(without the line numbers)"
        )
    if count > 1:
        return (
            f"old_text occurs {count} times in {path}; include more surrounding lines so it is "
            "unique"
        )
    offset = text.index(old_text)
    end = offset + len(old_text)
    for other in pending:
        if other.create or (offset < other.offset + len(other.old_text) and other.offset < end):
            return (
                f"this change overlaps edit {other.id} already proposed for {path}; "
                "propose one edit that covers both"
            )
    after = text[:offset] + new_text + text[end:]
    return ProposedEdit(
        edit_id,
        path,
        uri,
        position(text, offset),
        position(text, end),
        old_text,
        new_text,
        unified_diff(path, text, after),
        content_hash(text),
        False,
        offset,
    )


def unified_diff(path: str, before: str, after: str, *, create: bool = False) -> str:
    """A unified diff of one file, as ``git diff`` would show it."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile="/dev/null" if create else f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
