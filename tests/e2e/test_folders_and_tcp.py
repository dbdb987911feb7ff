"""Workspace folders added and removed at run time; the TCP transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from lsprotocol import types

from tests.e2e.harness import Session, write


async def test_added_and_removed_folders_change_the_agents(
    session: Session, tmp_path: Path
) -> None:
    second = tmp_path / "second"
    write(
        second,
        ".claude/agents/helper.md",
        "---\nname: helper\ndescription: From folder two\n---\nHi\n",
    )
    write(second, "lib/two.py", "TWO = 2\n")
    folder = types.WorkspaceFolder(uri=second.as_uri(), name="second")
    session.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(added=[folder], removed=[])
        )
    )

    async def names() -> set[str]:
        listed = await session.command("agentls.agents.list", {})
        return {a["name"] for a in listed["agents"]}

    deadline = asyncio.get_running_loop().time() + 10
    while "helper" not in await names():
        assert asyncio.get_running_loop().time() < deadline, "agent of the new folder never listed"
        await asyncio.sleep(0.05)
    status = await session.command("agentls.status", {})
    assert str(second) in status["folders"]
    preview = await session.command(
        "agentls.context.preview",
        {"agent": "helper", "task": "x", "files": [str(second / "lib/two.py")]},
    )
    assert "TWO = 2" in preview["prompt"]
    assert any(m["path"] == "second/lib/two.py" for m in preview["manifest"])

    session.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(added=[], removed=[folder])
        )
    )
    deadline = asyncio.get_running_loop().time() + 10
    while "helper" in await names():
        assert asyncio.get_running_loop().time() < deadline, "agent of the removed folder stayed"
        await asyncio.sleep(0.05)


def _frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _read_message(reader: asyncio.StreamReader) -> dict[str, object]:
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(await reader.readexactly(length))


async def test_tcp_transport_answers_initialize_and_commands(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "AGENTLS_DATA_DIR": str(tmp_path / "d"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentls",
        "serve",
        "--tcp",
        f"127.0.0.1:{port}",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        reader = writer = None
        for _ in range(200):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            await asyncio.sleep(0.05)
        assert reader is not None and writer is not None, "server never listened"
        ws = tmp_path / "ws"
        write(ws, ".agents/a.md", "---\ndescription: over tcp\n---\nHi\n")
        writer.write(
            _frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "processId": None,
                        "rootUri": ws.as_uri(),
                        "capabilities": {},
                        "workspaceFolders": [{"uri": ws.as_uri(), "name": "ws"}],
                    },
                }
            )
        )
        reply = await asyncio.wait_for(_read_message(reader), 10)
        assert reply["id"] == 1 and "capabilities" in reply["result"]  # type: ignore[operator]
        writer.write(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        writer.write(
            _frame(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "workspace/executeCommand",
                    "params": {"command": "agentls.agents.list", "arguments": [{}]},
                }
            )
        )
        while True:
            message = await asyncio.wait_for(_read_message(reader), 10)
            if message.get("id") == 2:
                break
        names = [a["name"] for a in message["result"]["agents"]]  # type: ignore[index]
        assert names == ["a"]
        writer.write(_frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
        writer.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
