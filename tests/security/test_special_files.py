"""Finding 4: FIFOs, devices and huge files in a workspace neither hang nor exhaust the server.

Every file the server opens from the workspace goes through one reader (regular files only, opened
without blocking, size checked on the descriptor and bounded while reading, contained in the
workspace). These tests plant each special file where the old reads met it: the diagnostics of a
definition, a definition linked after start-up, ``agentls.toml``, the ignore files.

Memory is judged by the server's peak resident size (``VmHWM``), far above what the server
needs (tens of MB) and far below what reading the planted file costs (hundreds of MB). A server
that would read ``/dev/zero`` runs with its address space capped, so the old behaviour fails the
test instead of the machine.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from tests.hardening.rawclient import RawServer
from tests.security.files_helpers import (
    Start,
    agent,
    agent_names,
    peak_rss_bytes,
    start_files_server,
)

__all__ = ["start_files_server"]

PEAK_RSS_LIMIT = 300 * 1024 * 1024
"""The server's peak RSS stays below this: it never reads a planted 400 MB (or endless) file."""

ADDRESS_SPACE_CAP = 3 * 1024**3
"""``RLIMIT_AS`` of a server that meets ``/dev/zero``: a runaway read dies at this size."""


def _workspace(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    root.mkdir()
    agent(root, "ok")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    return root


def _answers(server: RawServer) -> dict[str, object]:
    """``agentls.status`` answered within a hang bound (seconds, not a speed requirement)."""
    status: dict[str, object] = server.call("agentls.status", timeout=15)
    return status


def _wait_index_ready(server: RawServer) -> None:
    deadline = time.monotonic() + 15
    while server.call("agentls.status", timeout=15)["index"]["state"] != "ready":
        assert time.monotonic() < deadline, "the workspace scan never finished"
        time.sleep(0.05)


def test_a_fifo_definition_does_not_block_the_server(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    os.mkfifo(root / ".agents" / "p.md")
    server = start_files_server()
    server.initialize(root, wait_ready=False)
    _answers(server)
    assert "ok" in agent_names(server)
    server.shutdown_and_exit()


def test_a_huge_definition_is_not_read(start_files_server: Start, tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    big = root / ".agents" / "big.md"
    with open(big, "wb") as f:
        f.truncate(400 * 1024 * 1024)  # sparse: claims 400 MB, stores nothing
    server = start_files_server()
    server.initialize(root, wait_ready=False)
    server.wait_for(
        lambda m: (
            m.get("method") == "textDocument/publishDiagnostics"
            and m["params"]["uri"] == big.as_uri()
        ),
        timeout=15,
    )
    _answers(server)
    entry = next(
        a for a in server.call("agentls.agents.list")["agents"] if a["source"].endswith("big.md")
    )
    assert not entry["valid"]
    assert any("larger than" in p for p in entry["problems"])
    assert peak_rss_bytes(server) < PEAK_RSS_LIMIT
    server.shutdown_and_exit()


def test_a_late_symlink_to_dev_zero_is_not_read(start_files_server: Start, tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    server = start_files_server()
    resource.prlimit(server.pid, resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))
    server.initialize(root)
    for i in range(20):  # until the watcher is live and reports a new definition
        agent(root, f"probe{i}")
        deadline = time.monotonic() + 1
        while f"probe{i}" not in agent_names(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        if f"probe{i}" in agent_names(server):
            break
    (root / ".agents" / "zero.md").symlink_to("/dev/zero")
    agent(root, "fresh")
    deadline = time.monotonic() + 15
    while "fresh" not in (names := agent_names(server)):
        assert time.monotonic() < deadline, "the watcher never reported the new files"
        time.sleep(0.05)
    assert "zero" not in names
    _answers(server)
    assert peak_rss_bytes(server) < PEAK_RSS_LIMIT
    server.shutdown_and_exit()


@pytest.mark.parametrize("name", ["agentls.toml", ".gitignore", ".agentlsignore"])
def test_a_config_or_ignore_file_linked_to_stdin_is_not_read(
    start_files_server: Start, tmp_path: Path, name: str
) -> None:
    root = _workspace(tmp_path)
    (root / name).symlink_to("/dev/stdin")
    server = start_files_server()
    server.initialize(root, wait_ready=False)
    _answers(server)
    _wait_index_ready(server)
    preview = server.call(
        "agentls.context.preview",
        {"agent": "ok", "task": "t", "files": [str(root / "src" / "app.py")]},
        timeout=15,
    )
    assert "print('hi')" in preview["prompt"]
    assert server.problems() == []
    server.shutdown_and_exit()


def test_a_nested_fifo_gitignore_does_not_block_the_scan(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    os.mkfifo(root / "src" / ".gitignore")
    server = start_files_server()
    server.initialize(root, wait_ready=False)
    _wait_index_ready(server)
    assert server.call("agentls.status")["index"]["files"] >= 1
    server.shutdown_and_exit()
