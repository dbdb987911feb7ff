"""Diagnostics on agent files, external writes, unsaved buffers, and cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import Session, SessionFactory, wait_until, write


async def test_broken_yaml_gets_a_diagnostic_and_others_still_load(
    open_session: SessionFactory, workspace: Path
) -> None:
    broken = write(
        workspace, ".agents/broken.md", "---\nname: broken\ncontext: [unclosed\n---\nBody\n"
    )
    async with open_session(workspace) as s:
        uri = broken.as_uri()
        diagnostics = await wait_until(lambda: s.client.diagnostics.get(uri))
        assert diagnostics[0].severity == types.DiagnosticSeverity.Error
        assert diagnostics[0].range.start.line >= 1
        listed = await s.command("agentls.agents.list", {})
        agents = {a["name"]: a for a in listed["agents"]}
        assert agents["reviewer"]["valid"] is True
        assert agents["broken"]["valid"] is False
        assert agents["broken"]["problems"]
        with pytest.raises(JsonRpcException) as info:
            await s.command("agentls.run", {"agent": "broken", "task": "x"})
        assert info.value.code == -32602
        # fixing the file on disk clears the diagnostic and makes the agent valid
        broken.write_text("---\nname: broken\ncontext: [closed]\n---\nBody\n", encoding="utf-8")
        await wait_until(lambda: len(s.client.diagnostics[uri]) == 0, timeout=10)
        listed = await s.command("agentls.agents.list", {})
        assert {a["name"]: a for a in listed["agents"]}["broken"]["valid"] is True


async def test_unknown_backend_is_a_diagnostic(
    open_session: SessionFactory, workspace: Path
) -> None:
    path = write(workspace, ".agents/lost.md", "---\nbackend: nowhere\n---\nBody\n")
    async with open_session(workspace) as s:
        diagnostics = await wait_until(lambda: s.client.diagnostics.get(path.as_uri()))
        assert "nowhere" in diagnostics[0].message
        assert diagnostics[0].range.start.line == 1


async def test_external_write_is_seen_by_the_next_preview(session: Session) -> None:
    args = {"agent": "reviewer", "task": "x"}
    before = await session.command("agentls.context.preview", args)
    assert "hello from disk" in before["prompt"]
    for i in range(5):
        (session.root / "src/app.py").write_text(f"VERSION = {i}\n", encoding="utf-8")
        after = await session.command("agentls.context.preview", args)
        assert f"VERSION = {i}" in after["prompt"]
        assert "hello from disk" not in after["prompt"]


async def test_a_new_file_is_picked_up_by_the_watcher(session: Session) -> None:
    args = {"agent": "reviewer", "task": "x"}
    await session.command("agentls.context.preview", args)
    write(session.root, "src/new_module.py", "NEW_MODULE = 1\n")

    async def seen() -> bool:
        result = await session.command("agentls.context.preview", args)
        return "NEW_MODULE" in result["prompt"]

    deadline = asyncio.get_running_loop().time() + 10
    while not await seen():
        assert asyncio.get_running_loop().time() < deadline, "new file never appeared"
        await asyncio.sleep(0.05)


async def test_unsaved_buffer_wins_over_disk(session: Session) -> None:
    uri = session.uri("src/app.py")
    args = {"agent": "reviewer", "task": "x"}
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text="UNSAVED = 'buffer text'\n"
            )
        )
    )
    result = await session.command("agentls.context.preview", args)
    assert "buffer text" in result["prompt"]
    assert "hello from disk" not in result["prompt"]
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="EDITED = 2\n")],
        )
    )
    result = await session.command("agentls.context.preview", args)
    assert "EDITED = 2" in result["prompt"]
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    result = await session.command("agentls.context.preview", args)
    assert "hello from disk" in result["prompt"]


async def _slow_pids(root: Path) -> list[int]:
    pidfile = root / "slow.pids"
    await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10)
    return [int(p) for p in pidfile.read_text().split()]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _assert_gone(pids: list[int]) -> None:
    await wait_until(lambda: not any(_alive(p) for p in pids), timeout=10.0)


async def test_cancel_command_stops_the_process_group(session: Session) -> None:
    run = asyncio.ensure_future(session.command("agentls.run", {"agent": "slow", "task": "x"}))
    pids = await _slow_pids(session.root)
    await wait_until(lambda: len(session.recorded.output) >= 2)
    run_id = session.recorded.started[0]["id"]
    status = await session.command("agentls.status", {})
    assert [r["id"] for r in status["runs"]] == [run_id]
    assert await session.command("agentls.runs.cancel", {"id": run_id}) == {"cancelled": True}
    await _assert_gone(pids)
    result = await asyncio.wait_for(run, 5)
    assert result["status"] == "cancelled"
    assert "tick 0" in result["output"]  # partial output kept
    stored = await session.command("agentls.history.get", {"id": run_id})
    assert stored["status"] == "cancelled"
    assert stored["output"] == result["output"]


async def test_cancel_request_stops_the_process_group(session: Session) -> None:
    params = types.ExecuteCommandParams(
        command="agentls.run", arguments=[{"agent": "slow", "task": "x"}]
    )
    run = asyncio.ensure_future(
        session.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="cancel-me"
        )
    )
    pids = await _slow_pids(session.root)
    await wait_until(lambda: session.recorded.output)
    session.client.cancel_request(types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(run, 5)
    assert info.value.code == -32800
    await _assert_gone(pids)
    run_id = session.recorded.started[0]["id"]
    await wait_until(lambda: session.recorded.finished)
    stored = await session.command("agentls.history.get", {"id": run_id})
    assert stored["status"] == "cancelled"
