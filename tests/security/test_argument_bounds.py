"""Finding 8 (arguments and work): a request cannot make the server work without bound.

``files`` lists at most 1,000 entries (``-32602`` naming the field above that), and a glob over a
huge tree is expanded in slices, so other requests are answered while it runs. The second is a
test of behaviour, not of speed: a status request sent right after a big preview is answered
before that preview returns.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from tests.hardening.rawclient import frame
from tests.security.files_helpers import Start, agent, start_files_server

__all__ = ["start_files_server"]

TREE_FILES = 20_000
"""Files under the glob: ten slices of matching, a fraction of a second of work in all."""


def test_files_is_capped_at_a_thousand_entries(start_files_server: Start, tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    root.mkdir()
    agent(root, "ok")
    (root / "a.py").write_text("a = 1\n")
    server = start_files_server()
    server.initialize(root)
    for method in ("agentls.context.preview", "agentls.run"):
        resp = server.response(
            server.command(method, {"agent": "ok", "task": "t", "files": ["a.py"] * 1_001})
        )
        assert resp["error"]["code"] == -32602
        assert resp["error"]["message"].startswith("files:")
        assert "1,000" in resp["error"]["message"]
    at_cap = server.call(
        "agentls.context.preview", {"agent": "ok", "task": "t", "files": ["a.py"] * 1_000}
    )
    assert [m["reason"] for m in at_cap["manifest"]].count("duplicate") == 999
    assert server.problems() == []
    server.shutdown_and_exit()


@pytest.mark.slow  # builds a 20,000-file tree
def test_a_status_request_is_answered_while_a_huge_glob_is_expanded(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    for d in range(TREE_FILES // 1_000):
        sub = root / "src" / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(1_000):
            (sub / f"f{i}.py").touch()
    agent(root, "everything", front='context: ["**/*"]\n')
    # max_files = 0: the preview reads no file, so the only work it does is the expansion
    # (and the manifest); nothing else in it could hand the loop back.
    server = start_files_server(limits={"max_files": 0})
    server.initialize(root)
    deadline = time.monotonic() + 30  # a hang bound: the scan of the tree must finish first
    while server.call("agentls.status")["index"]["state"] != "ready":
        assert time.monotonic() < deadline, "the workspace scan never finished"
        time.sleep(0.05)

    preview = {
        "jsonrpc": "2.0",
        "id": "big",
        "method": "workspace/executeCommand",
        "params": {
            "command": "agentls.context.preview",
            "arguments": [{"agent": "everything", "task": "t"}],
        },
    }
    status = {
        "jsonrpc": "2.0",
        "id": "status",
        "method": "workspace/executeCommand",
        "params": {"command": "agentls.status", "arguments": []},
    }
    since = len(server.messages)
    # One write: both requests are in the server's input before it starts on the first.
    server.send_raw(frame(orjson.dumps(preview)) + frame(orjson.dumps(status)))
    big = server.response("big", timeout=60)
    assert len(big["result"]["manifest"]) >= TREE_FILES
    answers = [m.get("id") for m in server.messages[since:] if m.get("id") in ("big", "status")]
    assert answers == ["status", "big"], "status waited for the whole expansion"
    server.shutdown_and_exit()
