"""Agents that act, end to end: the real server, a fake provider scripting tool calls, and a
pytest-lsp client that answers ``workspace/applyEdit`` by writing the edit to disk."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import Session, SessionFactory, wait_until, write
from tests.fakes.providers import Call, FakeProvider, stream, tool_calls


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as fake:
        yield fake


class EditingClient:
    """What an editor does with ``workspace/applyEdit``: apply it to the files, say it did."""

    def __init__(self) -> None:
        self.received: list[types.ApplyWorkspaceEditParams] = []
        self.gate: asyncio.Event | None = None
        """When set, the editor waits for it before answering (a user in the preview)."""
        self.asked = asyncio.Event()

    async def answer(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.apply(params)

    def apply(self, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        self.received.append(params)
        edit = params.edit
        per_uri: dict[str, list[types.TextEdit]] = {}
        for uri, edits in (edit.changes or {}).items():
            per_uri.setdefault(uri, []).extend(edits)
        for change in edit.document_changes or ():
            if isinstance(change, types.CreateFile):
                path = _path(change.uri)
                if path.exists():
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason="exists")
                path.write_text("")
            elif isinstance(change, types.TextDocumentEdit):
                per_uri.setdefault(change.text_document.uri, []).extend(change.edits)
        for uri, edits in per_uri.items():
            path = _path(uri)
            text = path.read_text() if path.exists() else ""
            for e in sorted(edits, key=lambda e: _offset(text, e.range.start), reverse=True):
                start, end = _offset(text, e.range.start), _offset(text, e.range.end)
                text = text[:start] + e.new_text + text[end:]
            path.write_text(text)
        return types.ApplyWorkspaceEditResult(applied=True)


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def _offset(text: str, pos: types.Position) -> int:
    lines = text.splitlines(keepends=True)
    before = sum(len(line) for line in lines[: pos.line])
    line = lines[pos.line] if pos.line < len(lines) else ""
    units = line.encode("utf-16-le")[: pos.character * 2].decode("utf-16-le")
    return before + len(units)


@contextlib.asynccontextmanager
async def editing_session(
    open_session: SessionFactory, workspace: Path, provider: FakeProvider
) -> AsyncIterator[tuple[Session, EditingClient]]:
    """A session whose default backend is ``provider`` and whose client applies workspace edits."""
    backend: dict[str, Any] = {
        "kind": provider.kind,
        "base_url": provider.base_url,
        "model": provider.model,
        "max_retries": 0,
    }
    options = {"default_backend": "fake", "backends": {"fake": backend}}
    async with open_session(workspace, init_options=options) as s:
        editor = EditingClient()

        async def on_apply_edit(ls: Any, params: types.ApplyWorkspaceEditParams) -> Any:
            return await editor.answer(params)

        s.client.feature(types.WORKSPACE_APPLY_EDIT)(on_apply_edit)
        yield s, editor


@pytest.fixture
async def tool_session(
    open_session: SessionFactory, workspace: Path, provider: FakeProvider
) -> AsyncIterator[tuple[Session, EditingClient]]:
    fixer = "---\nname: fixer\ndescription: Fixes code.\ntools: Read, Edit\n---\nFix.\n"
    write(workspace, ".claude/agents/fixer.md", fixer)  # Claude Code needs a description
    async with editing_session(open_session, workspace, provider) as pair:
        yield pair


async def test_a_review_agent_reads_two_files_and_answers(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, _ = tool_session
    a = Call("read_file", {"path": "src/app.py"})
    b = Call("read_file", {"path": "src/util.py"})
    provider.script(tool_calls(a, b), stream("Both ", "look fine."))
    result = await session.command("agentls.run", {"agent": "reviewer", "task": "review"})
    assert result["status"] == "succeeded", result
    assert result["output"] == "Both look fine."
    assert result["turns"] == 2
    assert [(c["tool"], c["status"]) for c in result["tool_calls"]] == [
        ("read_file", "succeeded"),
        ("read_file", "succeeded"),
    ]
    assert result["tool_calls"][0]["summary"] == "read src/app.py (lines 1-2)"
    rows = [m for m in result["manifest"] if m["source"] == "tool"]
    assert [r["path"] for r in rows] == ["src/app.py", "src/util.py"]
    assert "return 42" in repr(provider.requests[1].json)
    await wait_until(lambda: len(session.recorded.tool_calls) >= 4)
    mine = [n for n in session.recorded.tool_calls if n["id"] == result["id"]]
    assert sorted(n["status"] for n in mine) == ["started", "started", "succeeded", "succeeded"]
    assert {n["call_id"] for n in mine} == {a.id, b.id}
    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert stored["tool_calls"] == result["tool_calls"] and stored["turns"] == 2


async def test_a_fix_agent_proposes_an_edit_that_the_editor_applies(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider, client_name: str
) -> None:
    session, editor = tool_session
    target = session.root / "src" / "app.py"
    propose = Call(
        "propose_edit",
        {"path": "src/app.py", "old_text": "'hello from disk'", "new_text": "'hello, édit'"},
    )
    provider.script(tool_calls(propose), stream("Proposed a fix."))
    result = await session.command("agentls.run", {"agent": "fixer", "task": "fix"})
    assert result["status"] == "succeeded", result
    [edit] = result["edits"]
    assert edit["range"] == {
        "start": {"line": 1, "character": 11},
        "end": {"line": 1, "character": 28},
    }
    assert edit["uri"] == target.as_uri() and edit["state"] == "proposed"
    assert target.read_text() == "def main():\n    return 'hello from disk'\n"  # never written

    applied = await session.command("agentls.edits.apply", {"id": result["id"]})
    assert applied == {"applied": True, "edits": ["e1"]}
    [sent] = editor.received
    assert sent.label == "agentls: fixer"
    if client_name == "visual-studio-code":  # documentChanges and change annotations
        [doc_edit] = sent.edit.document_changes or []
        assert isinstance(doc_edit, types.TextDocumentEdit)
        [text_edit] = doc_edit.edits
        assert isinstance(text_edit, types.AnnotatedTextEdit)
        annotation = (sent.edit.change_annotations or {})[text_edit.annotation_id]
        assert annotation.needs_confirmation is True
    else:  # Neovim: the plain changes map
        [text_edit] = (sent.edit.changes or {})[target.as_uri()]
    assert (text_edit.range.start.line, text_edit.range.start.character) == (1, 11)
    assert (text_edit.range.end.line, text_edit.range.end.character) == (1, 28)
    assert target.read_text() == "def main():\n    return 'hello, édit'\n"

    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert stored["edits"][0]["state"] == "applied"
    with pytest.raises(JsonRpcException) as again:
        await session.command("agentls.edits.apply", {"id": result["id"], "edits": ["e1"]})
    assert again.value.code == -32602 and "already applied" in str(again.value)


async def test_an_edit_to_a_changed_file_is_refused(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, editor = tool_session
    target = session.root / "src" / "util.py"
    propose = Call("propose_edit", {"path": "src/util.py", "old_text": "42", "new_text": "43"})
    provider.script(tool_calls(propose), stream("Done."))
    result = await session.command("agentls.run", {"agent": "fixer", "task": "fix"})
    assert [e["id"] for e in result["edits"]] == ["e1"], result
    target.write_text("def helper():\n    return 41  # changed by the user\n")
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.edits.apply", {"id": result["id"]})
    assert info.value.code == -32602
    assert "src/util.py changed since edit e1 was proposed" in str(info.value)
    assert editor.received == []
    assert "changed by the user" in target.read_text()

    discarded = await session.command("agentls.edits.discard", {"id": result["id"]})
    assert discarded == {"discarded": 1}
    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert stored["edits"][0]["state"] == "discarded"
    with pytest.raises(JsonRpcException) as unknown:
        await session.command("agentls.edits.apply", {"id": result["id"], "edits": ["e9"]})
    assert unknown.value.code == -32602 and "no edit 'e9'" in str(unknown.value)


async def test_an_edit_is_sent_once_while_the_editor_is_deciding(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, editor = tool_session
    propose = Call("propose_edit", {"path": "src/util.py", "old_text": "42", "new_text": "43"})
    provider.script(tool_calls(propose), stream("Done."))
    result = await session.command("agentls.run", {"agent": "fixer", "task": "fix"})
    editor.gate = asyncio.Event()
    first = asyncio.ensure_future(session.command("agentls.edits.apply", {"id": result["id"]}))
    await asyncio.wait_for(editor.asked.wait(), 30)
    with pytest.raises(JsonRpcException) as second:
        await asyncio.wait_for(session.command("agentls.edits.apply", {"id": result["id"]}), 30)
    assert second.value.code == -32602 and "being applied" in str(second.value)
    editor.gate.set()
    assert (await asyncio.wait_for(first, 30))["applied"] is True
    assert len(editor.received) == 1
    assert (session.root / "src" / "util.py").read_text().endswith("return 43\n")


async def test_an_edit_the_user_already_accepted_is_applied_without_asking_again(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider, client_name: str
) -> None:
    """``confirm: false`` (the extension's "Accept All"): VS Code must not show its refactor
    preview, where changes that need confirmation start unticked and "Apply" would apply none."""
    session, editor = tool_session
    propose = Call("propose_edit", {"path": "src/util.py", "old_text": "42", "new_text": "43"})
    provider.script(tool_calls(propose), stream("Done."))
    result = await session.command("agentls.run", {"agent": "fixer", "task": "fix"})
    with pytest.raises(JsonRpcException) as bad:
        await session.command("agentls.edits.apply", {"id": result["id"], "confirm": "no"})
    assert bad.value.code == -32602 and str(bad.value).startswith("confirm: expected a boolean")
    applied = await session.command("agentls.edits.apply", {"id": result["id"], "confirm": False})
    assert applied == {"applied": True, "edits": ["e1"]}
    [sent] = editor.received
    if client_name == "visual-studio-code":
        [doc_edit] = sent.edit.document_changes or []
        assert isinstance(doc_edit, types.TextDocumentEdit)
        [text_edit] = doc_edit.edits
        assert isinstance(text_edit, types.AnnotatedTextEdit)
        annotation = (sent.edit.change_annotations or {})[text_edit.annotation_id]
        assert annotation.needs_confirmation is False
        assert annotation.label == "agentls: fixer: edit src/util.py"
    else:
        assert list(sent.edit.changes or {}) == [(session.root / "src" / "util.py").as_uri()]
    assert (session.root / "src" / "util.py").read_text().endswith("return 43\n")
    stored = await session.command("agentls.history.get", {"id": result["id"]})
    assert stored["edits"][0]["state"] == "applied"


async def test_an_edit_to_an_open_buffer_targets_that_buffer_and_its_version(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider, client_name: str
) -> None:
    session, editor = tool_session
    alias = session.root / "src" / "alias.py"  # the editor opened the file through a symlink
    alias.symlink_to(session.root / "src" / "app.py")
    unsaved = "def main():\n    return 'unsaved text'\n"
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=alias.as_uri(), language_id="python", version=7, text=unsaved
            )
        )
    )
    propose = Call(
        "propose_edit",
        {"path": "src/app.py", "old_text": "'unsaved text'", "new_text": "'saved'"},
    )
    provider.script(tool_calls(propose), stream("Done."))
    result = await session.command("agentls.run", {"agent": "fixer", "task": "fix"})
    [edit] = result["edits"]  # computed against the buffer, not the disk
    assert edit["range"]["start"] == {"line": 1, "character": 11}
    applied = await session.command("agentls.edits.apply", {"id": result["id"]})
    assert applied["applied"] is True
    [sent] = editor.received
    if client_name == "visual-studio-code":
        [doc_edit] = sent.edit.document_changes or []
        assert isinstance(doc_edit, types.TextDocumentEdit)
        assert doc_edit.text_document.uri == alias.as_uri()
        assert doc_edit.text_document.version == 7
    else:
        assert list(sent.edit.changes or {}) == [alias.as_uri()]


async def test_a_diagnostics_agent_reports_findings_through_the_tool(
    tool_session: tuple[Session, EditingClient], provider: FakeProvider
) -> None:
    session, _ = tool_session
    write(
        session.root,
        ".claude/agents/checker.md",
        "---\nname: checker\ndescription: Checks code.\ntools: Read\noutput: diagnostics\n---\n"
        "Check.\n",
    )
    for _ in range(100):  # the watcher brings the new agent in; 10 s only catches a hang
        listed = await session.command("agentls.agents.list", {})
        if any(a["name"] == "checker" for a in listed["agents"]):
            break
        await asyncio.sleep(0.1)
    found = Call(
        "report_finding",
        {"path": "src/app.py", "line": 1, "severity": "error", "message": "greets the disk"},
    )
    outside = Call("report_finding", {"path": "../outside.py", "line": 1, "message": "no"})
    bad = Call("report_finding", {"path": "src/app.py", "line": 0, "message": "line 0"})
    provider.script(tool_calls(found, outside, bad), stream("One problem."))
    result = await session.command("agentls.run", {"agent": "checker", "task": "check"})
    assert result["status"] == "succeeded", result
    offered = {t["function"]["name"] if "function" in t else t["name"] for t in _tools_of(provider)}
    assert "report_finding" in offered and "propose_edit" not in offered
    assert [(c["tool"], c["status"]) for c in result["tool_calls"]] == [
        ("report_finding", "succeeded"),
        ("report_finding", "refused"),
        ("report_finding", "refused"),
    ]
    assert [f["message"] for f in result["findings"]] == ["greets the disk"]
    uri = session.uri("src/app.py")
    diagnostics = await wait_until(lambda: session.client.diagnostics.get(uri))
    assert [(d.message, d.source) for d in diagnostics] == [("greets the disk", "agentls: checker")]


def _tools_of(provider: FakeProvider) -> list[dict[str, Any]]:
    """The tools the first request of the last run offered (either API's shape)."""
    body = provider.requests[-2].json
    return list(body.get("tools") or [])
