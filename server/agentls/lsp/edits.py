"""A run's proposed edits as one ``workspace/applyEdit``, in the form the client can take.

Clients that support ``documentChanges`` get ``TextDocumentEdit``s (versioned when the document is
open, so the client refuses an edit to a buffer that changed since) and ``CreateFile`` for new
files; with change-annotation support every change carries an annotation naming the agent and the
file. When the caller asks for confirmation, the annotations say ``needsConfirmation: true`` and VS
Code shows its refactor preview, where such changes start unticked: the user ticks what to apply.
A user who already accepted the edits (the extension's "Accept All") is not asked again: the
annotations say ``needsConfirmation: false`` and VS Code applies the edit at once, to the buffers
(unsaved, undoable).
Other clients (Neovim, Helix, Emacs' eglot) get the plain ``changes`` map; a new file is an insert
into a URI that does not exist yet, which those clients open as a new, unsaved buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types


def workspace_edit(
    agent: str,
    edits: list[dict[str, Any]],
    capabilities: types.ClientCapabilities,
    version_of: Callable[[str], int | None],
    *,
    confirm: bool = True,
) -> types.WorkspaceEdit:
    """The edit to send for ``edits`` (protocol dicts, in proposal order); ``confirm`` asks the
    editor to have the user confirm each change where it can."""
    ws = capabilities.workspace
    caps = ws.workspace_edit if ws is not None else None
    document_changes = bool(caps and caps.document_changes)
    annotate = document_changes and bool(caps and caps.change_annotation_support)
    can_create = document_changes and bool(
        caps and types.ResourceOperationKind.Create in (caps.resource_operations or ())
    )
    if not document_changes:
        changes: dict[str, list[types.TextEdit]] = {}
        for edit in edits:
            changes.setdefault(edit["uri"], []).append(
                types.TextEdit(range=_range(edit), new_text=edit["new_text"])
            )
        return types.WorkspaceEdit(changes=changes)
    operations: list[Any] = []
    annotations: dict[str, types.ChangeAnnotation] = {}
    by_uri: dict[str, list[dict[str, Any]]] = {}
    for edit in edits:
        by_uri.setdefault(edit["uri"], []).append(edit)
    for uri, group in by_uri.items():
        text_edits: list[types.TextEdit | types.AnnotatedTextEdit] = []
        for edit in group:
            annotation = None
            if annotate:
                annotation = edit["id"]
                verb = "create" if edit.get("create") else "edit"
                annotations[annotation] = types.ChangeAnnotation(
                    label=f"agentls: {agent}: {verb} {edit['path']}",
                    needs_confirmation=confirm,
                    description=f"edit {edit['id']} proposed by {agent}",
                )
            if edit.get("create") and can_create:
                operations.append(
                    types.CreateFile(
                        uri=uri,
                        options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False),
                        annotation_id=annotation,
                    )
                )
            if annotation is not None:
                text_edits.append(
                    types.AnnotatedTextEdit(
                        range=_range(edit), new_text=edit["new_text"], annotation_id=annotation
                    )
                )
            else:
                text_edits.append(types.TextEdit(range=_range(edit), new_text=edit["new_text"]))
        created = any(edit.get("create") for edit in group)
        operations.append(
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=None if created else version_of(uri)
                ),
                edits=text_edits,
            )
        )
    return types.WorkspaceEdit(document_changes=operations, change_annotations=annotations or None)


def _range(edit: dict[str, Any]) -> types.Range:
    r = edit["range"]
    return types.Range(
        start=types.Position(line=r["start"]["line"], character=r["start"]["character"]),
        end=types.Position(line=r["end"]["line"], character=r["end"]["character"]),
    )
