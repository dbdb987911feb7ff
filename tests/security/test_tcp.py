"""Finding 8 (TCP): a TCP peer is not the user's editor.

``--tcp`` listens on loopback only unless ``--allow-remote`` is given. Over a real TCP session, a
client that does not present ``AGENTLS_TCP_TOKEN`` cannot define a command backend nor declare
the workspace trusted: its backend never runs. With the token, the same client is trusted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.security.proc_helpers import Server, free_port, write

TOKEN = "tcp-token-for-the-test-0123456789"


def _options(marker: Path) -> dict[str, object]:
    """What a hostile peer sends: its own backend (``id`` in the report; a marker here)."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return {
        "trusted": True,
        "default_backend": "peer",
        "backends": {"peer": {"kind": "command", "argv": [sys.executable, "-c", code]}},
    }


def _refused(server: Server) -> str:
    """Run the agent; the peer's backend is unknown: the request or the run fails. The reason."""
    rid = server.request(
        "workspace/executeCommand",
        {"command": "agentls.run", "arguments": [{"agent": "a", "task": "x"}]},
    )
    resp = server.response(rid, 60)
    if "error" in resp:
        return str(resp["error"]["message"])
    assert resp["result"]["status"] == "failed", resp
    return str(resp["result"]["error"])


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write(ws, ".agents/a.md", "---\ndescription: over tcp\n---\nHi {{task}}\n")
    return ws


def test_unauthenticated_tcp_client_cannot_run_its_own_backend(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    marker = tmp_path / "peer-ran.txt"
    server = Server(tmp_path / "srv", tcp_port=free_port(), env={"AGENTLS_TCP_TOKEN": TOKEN})
    try:
        server.initialize(ws, options={**_options(marker), "token": "wrong"})
        status = server.call("agentls.status")
        assert status["trusted"] is False
        assert any("not authenticated" in p for p in status["config_problems"])
        assert "'peer' is not configured" in _refused(server)
    finally:
        server.kill()
    assert not marker.exists(), "an unauthenticated TCP client ran a command"


def test_tcp_client_without_a_server_token_is_never_trusted(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    marker = tmp_path / "peer-ran.txt"
    server = Server(tmp_path / "srv", tcp_port=free_port())
    try:
        server.initialize(ws, options={**_options(marker), "token": ""})
        assert "'peer' is not configured" in _refused(server)
    finally:
        server.kill()
    assert not marker.exists()


def test_tcp_client_with_the_token_is_trusted(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    marker = tmp_path / "peer-ran.txt"
    server = Server(tmp_path / "srv", tcp_port=free_port(), env={"AGENTLS_TCP_TOKEN": TOKEN})
    try:
        server.initialize(ws, options={**_options(marker), "token": TOKEN})
        assert server.call("agentls.status")["trusted"] is True
        result = server.call("agentls.run", {"agent": "a", "task": "x"})
        assert result["status"] == "succeeded", result
    finally:
        server.kill()
    assert marker.read_text() == "ran"


def test_tcp_listens_on_loopback_only_unless_allowed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentls", "serve", "--tcp", f"0.0.0.0:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--allow-remote" in proc.stderr
    assert proc.stdout == ""
