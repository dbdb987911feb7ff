"""Finding 5: template amplification. The expanded prompt is bounded before it is built.

A definition body that repeats ``{{task}}`` (or ``{{selection}}``) thousands of times turned a
short request into a prompt hundreds of MB long, and the server died building it. The size is now
computed first; over ``limits.max_prompt_bytes`` the request fails with ``-32602`` and a message
naming the limit, and the server goes on answering.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.hardening.rawclient import RawServer
from tests.security.files_helpers import Start, agent, start_files_server

__all__ = ["start_files_server"]


def _workspace(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    root.mkdir()
    agent(root, "ok")
    agent(root, "tasks", body="{{task}}" * 2_000)  # 16 KB body
    agent(
        root,
        "selections",
        body="{{selection}}" * 1_000,
        front="include: [selection]\n",
    )
    (root / "src").mkdir()
    (root / "src" / "big.py").write_text("x = 1  # some code\n" * 300)  # about 6 KB
    return root


def _refused(server: RawServer, args: dict[str, object]) -> str:
    """The error message of a preview that must be refused for its size."""
    resp = server.response(server.command("agentls.context.preview", args), timeout=30)
    assert "error" in resp, f"built a prompt of {len(resp['result']['prompt']):,} characters"
    assert resp["error"]["code"] == -32602
    message: str = resp["error"]["message"]
    assert "max_prompt_bytes" in message
    return message


def test_a_repeated_task_is_refused_before_the_prompt_is_built(
    start_files_server: Start, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    server = start_files_server()
    server.initialize(root)
    # 2,000 x 2,000 characters: 4 MB, over the default bound (2 MiB for 60,000 tokens).
    _refused(server, {"agent": "tasks", "task": "t" * 2_000})
    run = server.response(
        server.command("agentls.run", {"agent": "tasks", "task": "t" * 2_000}), timeout=30
    )
    assert run["error"]["code"] == -32602
    # A short task through the same agent is fine, and the server still answers.
    assert server.call("agentls.context.preview", {"agent": "tasks", "task": "t"})["prompt"]
    assert server.call("agentls.status")["runs"] == []
    assert server.problems() == []
    server.shutdown_and_exit()


def test_a_repeated_selection_is_refused(start_files_server: Start, tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    server = start_files_server()
    server.initialize(root)
    big = root / "src" / "big.py"
    whole = {"start": {"line": 0, "character": 0}, "end": {"line": 300, "character": 0}}
    _refused(server, {"agent": "selections", "task": "t", "uri": big.as_uri(), "range": whole})
    assert server.call("agentls.status")["index"]["state"] == "ready"
    server.shutdown_and_exit()


def test_the_bound_is_the_users_setting(start_files_server: Start, tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    server = start_files_server(limits={"max_prompt_bytes": 50_000})
    server.initialize(root)
    # 2,000 x 30 characters: 60 KB, under the default bound but over the user's.
    message = _refused(server, {"agent": "tasks", "task": "t" * 30})
    assert "50,000" in message
    assert server.call("agentls.context.preview", {"agent": "tasks", "task": "t" * 20})
    server.shutdown_and_exit()
