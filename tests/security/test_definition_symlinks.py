"""Finding 3: agent-definition symlinks neither bypass the deny-list nor leave the workspace.

A definition reached through a symlink is judged by where it points, at every read: at start-up
and when the watcher (or the editor) reports a file created later, as a ``git pull`` creates it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.hardening.rawclient import RawServer
from tests.security.files_helpers import (
    CANARY,
    Start,
    agent,
    agent_names,
    start_files_server,
)

__all__ = ["start_files_server"]


def _workspace(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    root.mkdir()
    agent(root, "ok")
    return root


def _wait_for_agent(server: RawServer, name: str) -> set[str]:
    """The agent names once ``name`` is among them (bounded: a hang guard, not a speed test)."""
    deadline = time.monotonic() + 10
    names = agent_names(server)
    while name not in names and time.monotonic() < deadline:
        time.sleep(0.05)
        names = agent_names(server)
    return names


def _wait_for_live_watcher(server: RawServer, root: Path) -> None:
    """Create probe definitions until the watcher reports one: from then on it sees all."""
    for i in range(20):
        agent(root, f"probe{i}")
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if f"probe{i}" in agent_names(server):
                return
            time.sleep(0.05)
    raise AssertionError("the file watcher never reported a new definition")


def test_a_definition_linked_to_a_denied_file_is_no_agent(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    (root / ".env").write_text(f"API_TOKEN={CANARY}\n")
    (root / ".agents" / "reviewer.md").symlink_to("../.env")
    server = start_files_server()
    server.initialize(root)

    names = agent_names(server)
    assert "ok" in names
    assert "reviewer" not in names
    # Not runnable under any name, and the secret never came back on any channel.
    resp = server.response(
        server.command("agentls.context.preview", {"agent": "reviewer", "task": "t"})
    )
    assert resp["error"]["code"] == -32602
    assert CANARY not in bytes(server.stdout_bytes).decode("utf-8", "replace")
    assert server.problems(canaries=(CANARY,)) == []
    server.shutdown_and_exit()


def test_a_symlink_created_after_start_up_is_refused_like_at_start_up(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    outside = Path(os.path.realpath(tmp_path)) / "home" / ".ssh"
    outside.mkdir(parents=True)
    key = outside / "id_rsa"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}\n")
    inside_secret = root / "deploy.pem"
    inside_secret.write_text(f"{CANARY}\n")
    server = start_files_server()
    server.initialize(root)
    assert "late" not in agent_names(server)

    _wait_for_live_watcher(server, root)

    # As a `git pull` would: links appear next to an ordinary new definition. No editor
    # notification: the server's own watcher reports the raw paths, links unresolved.
    late = root / ".agents" / "late.md"
    late.symlink_to(key)
    pem = root / ".agents" / "pem.md"
    pem.symlink_to(inside_secret)
    agent(root, "fresh")
    names = _wait_for_agent(server, "fresh")
    assert "fresh" in names
    assert "late" not in names
    assert "pem" not in names
    resp = server.response(
        server.command("agentls.context.preview", {"agent": "late", "task": "t"})
    )
    assert resp["error"]["code"] == -32602
    assert server.problems(canaries=(CANARY,)) == []
    server.shutdown_and_exit()
