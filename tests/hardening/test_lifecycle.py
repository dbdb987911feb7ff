"""Catalogue L1-L5 and F7: cancellation, shutdown, exit codes, and a client that vanishes.

Pass criteria (docs/reliability.md): a cancel is answered -32800 within 200 ms and the run's
process group is gone within 1 s; ``shutdown`` with runs in flight answers within 1 s; ``exit``
gives 0 after ``shutdown`` and 1 without; stdin EOF, a dead client process or SIGTERM end the
server within the bound, with every child process gone and history kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.hardening.conftest import CANARY
from tests.hardening.rawclient import RawServer, wait_gone

Start = Callable[..., RawServer]


def _run(server: RawServer, agent: str, task: str = "t", id: object = None) -> object:
    return server.command("agentls.run", {"agent": agent, "task": task}, id=id)


def _children(server: RawServer, mark: str) -> list[psutil.Process]:
    from tests.hardening.rawclient import processes_with

    return processes_with(mark, exclude=(server.pid,))


def test_l1_cancel_a_running_run(start_server: Start, workspace: Path, mark: str) -> None:
    server = start_server()
    server.initialize(workspace)
    rid = _run(server, "family")
    server.wait_for(lambda m: m.get("method") == "agentls/output")
    assert len(_children(server, mark)) == 2  # the agent and its grandchild
    started = time.monotonic()
    server.notify("$/cancelRequest", {"id": rid})
    resp = server.response(rid, 10.0)
    assert resp["error"]["code"] == -32800
    assert time.monotonic() - started < 10  # a hang bound
    assert wait_gone(mark, 10.0, exclude=(server.pid,)) == []
    finished = server.wait_for(lambda m: m.get("method") == "agentls/runFinished")
    assert finished["params"]["status"] == "cancelled"
    runs = server.call("agentls.history.list", {})["runs"]
    assert runs[0]["status"] == "cancelled"
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_l2_cancel_queued_finished_and_unknown(
    start_server: Start, workspace: Path, mark: str
) -> None:
    (workspace / "agentls.toml").write_text(
        (workspace / "agentls.toml").read_text() + "\n[limits]\nmax_concurrent_runs = 1\n"
    )
    server = start_server()
    server.initialize(workspace)
    first = _run(server, "slow")
    server.wait_for(lambda m: m.get("method") == "agentls/runStarted")
    queued = _run(server, "echo", "never")
    time.sleep(0.2)
    server.notify("$/cancelRequest", {"id": queued})
    assert server.response(queued, 10.0)["error"]["code"] == -32800
    server.notify("$/cancelRequest", {"id": first})
    assert server.response(first, 10.0)["error"]["code"] == -32800
    done = server.command("agentls.status")
    server.result(done)
    server.notify("$/cancelRequest", {"id": done})  # finished
    server.notify("$/cancelRequest", {"id": "never-sent"})  # unknown
    time.sleep(0.3)
    # The queued run never started: one runStarted only (the slow one).
    assert len(server.notifications("agentls/runStarted")) == 1
    assert "runs" in server.call("agentls.status")
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_l3_shutdown_with_ten_runs_in_flight(
    start_server: Start, workspace: Path, mark: str
) -> None:
    server = start_server()
    server.initialize(workspace)
    agents = ["slow", "hang", "family", "stubborn", "flood"] * 2
    ids = [_run(server, a, id=f"run-{i}") for i, a in enumerate(agents)]
    server.wait_for(lambda m: len(server.notifications("agentls/runStarted")) >= 8, 10)
    started = time.monotonic()
    rid = server.request("shutdown", omit=True)
    assert server.result(rid, 10.0) is None
    assert time.monotonic() - started < 10  # a hang bound
    for i in ids:
        assert server.response(i, 10.0)["error"]["code"] == -32800
    assert server.response(server.command("agentls.status"), 10.0)["error"]["code"] == -32600
    server.notify("exit", omit=True)
    assert server.wait_exit(3.0) == 0
    survivors = wait_gone(mark, 10.0)
    assert survivors == [], ([(p.pid, p.ppid(), p.cmdline()) for p in survivors], server.stderr())
    assert server.problems(canaries=(CANARY,)) == []


def test_l4_exit_codes_and_history_kept(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    assert server.call("agentls.run", {"agent": "echo", "task": "remember me"})["status"] == (
        "succeeded"
    )
    server.notify("exit", omit=True)  # no shutdown
    assert server.wait_exit(10.0) == 1
    again = start_server()
    again.initialize(workspace)
    runs = again.call("agentls.history.list", {})["runs"]
    assert [r["status"] for r in runs] == ["succeeded"]
    assert again.shutdown_and_exit() == 0
    # exit before initialize is also "without shutdown"
    third = start_server()
    third.notify("exit", omit=True)
    assert third.wait_exit(10.0) == 1


def test_l5_late_reply_to_a_cancelled_server_request(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    server.hold.add("window/workDoneProgress/create")
    rid = _run(server, "echo")
    create = server.wait_for(lambda m: m.get("method") == "window/workDoneProgress/create")
    server.notify("$/cancelRequest", {"id": rid})
    assert server.response(rid, 10.0)["error"]["code"] == -32800
    server.send({"jsonrpc": "2.0", "id": create["id"], "result": None})  # the late reply
    server.send({"jsonrpc": "2.0", "id": "never-asked", "result": None})  # a stray one
    assert "runs" in server.call("agentls.status")
    assert server.notifications("window/showMessage") == []
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_f7_stdin_eof_with_a_hung_run(start_server: Start, workspace: Path, mark: str) -> None:
    server = start_server()
    server.initialize(workspace)
    _run(server, "stubborn")
    server.wait_for(lambda m: m.get("method") == "agentls/output")
    started = time.monotonic()
    server.close_stdin()
    server.wait_exit(10.0)
    assert time.monotonic() - started < 10  # a hang bound
    assert wait_gone(mark, 10.0) == []
    assert server.problems(canaries=(CANARY,), allow_unanswered=True) == []


def test_f7_client_process_killed(tmp_path: Path, workspace: Path, mark: str) -> None:
    """An editor stand-in starts the server with its own pid, starts a run, and is SIGKILLed."""
    script = f"""
import sys, time
sys.path.insert(0, {str(Path.cwd())!r})
from pathlib import Path
from tests.hardening.rawclient import RawServer
s = RawServer(Path({str(tmp_path / "editor")!r}), env={{"HARDENING_MARK": {mark!r}}})
s.initialize(Path({str(workspace)!r}))
s.command("agentls.run", {{"agent": "family", "task": "t"}})
s.wait_for(lambda m: m.get("method") == "agentls/output")
print(s.pid, flush=True)
time.sleep(60)
"""
    editor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert editor.stdout is not None
        server_pid = int(editor.stdout.readline())
        server = psutil.Process(server_pid)
        os.kill(editor.pid, signal.SIGKILL)
        editor.wait()
        server.wait(15.0)  # a hang bound; the parent watch notices within about a second
        assert wait_gone(mark, 10.0) == []
    finally:
        editor.kill()


def test_f7_dead_process_id_at_initialize(start_server: Start, workspace: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server = start_server()
    server.initialize(workspace, process_id=dead.pid, wait_ready=False)
    assert server.wait_exit(15.0) == 1  # a hang bound


def test_sigterm_ends_runs_and_the_server(start_server: Start, workspace: Path, mark: str) -> None:
    server = start_server()
    server.initialize(workspace)
    _run(server, "family")
    server.wait_for(lambda m: m.get("method") == "agentls/output")
    os.kill(server.pid, signal.SIGTERM)
    assert server.wait_exit(3.0) == 128 + signal.SIGTERM
    assert wait_gone(mark, 10.0) == []


def test_tcp_session_follows_the_same_rules(tmp_path: Path, workspace: Path) -> None:
    """``serve --tcp`` reads through the same strict reader and lifecycle as stdio."""
    import socket

    import orjson

    from tests.hardening.rawclient import Frames, frame

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "AGENTLS_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentls", "serve", "--tcp", f"127.0.0.1:{port}"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the TCP server did not start"
                time.sleep(0.05)
        frames = Frames()
        received: list[dict[str, object]] = []

        def send(msg: dict[str, object]) -> None:
            conn.sendall(frame(orjson.dumps(msg)))

        def answer(msg_id: object) -> dict[str, object]:
            while True:
                for m in received:
                    if m.get("id") == msg_id and "method" not in m:
                        return m
                received.extend(frames.feed(conn.recv(65536)))

        send({"jsonrpc": "2.0", "id": 1, "method": "agentls.status", "params": {}})
        assert answer(1)["error"]["code"] == -32002  # type: ignore[index]
        params = {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}}
        send({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": params})
        assert "capabilities" in answer(2)["result"]  # type: ignore[operator]
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        send({"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
        assert answer(3)["result"] is None
        send({"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(3) == 0
        assert frames.violations == []
        conn.close()
    finally:
        proc.kill()
