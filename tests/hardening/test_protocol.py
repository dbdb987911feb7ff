"""Catalogue P1-P7: bad input at the stdio boundary. The server stays up, answers every
request exactly once with the right JSON-RPC code, never shows exception text, and the session
goes on. Each test ends by checking the global invariants and a clean shutdown (exit code 0)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.hardening.conftest import CANARY
from tests.hardening.rawclient import RawServer, frame

Start = Callable[..., RawServer]


def _healthy(server: RawServer) -> None:
    """The session still works: a command answers."""
    assert "runs" in server.call("agentls.status")


def _finish(server: RawServer, **kw: Any) -> None:
    assert server.problems(canaries=(CANARY,), **kw) == []
    assert server.shutdown_and_exit() == 0


def _error(server: RawServer, msg_id: Any, timeout: float = 10.0) -> dict[str, Any]:
    resp = server.response(msg_id, timeout)
    assert "error" in resp, resp
    assert "data" not in resp["error"]
    return dict(resp["error"])


def test_p1_bodies_that_are_not_requests(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    bad_json = [
        b'{"jsonrpc": "2.0", "id": 1, "method": "x"',  # truncated
        b"\xff\xfe not utf-8",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
    ]
    for body in bad_json:
        n = len(server.messages)
        server.send_raw(frame(body))
        server.wait_for(
            lambda m: m.get("error", {}).get("code") == -32700 and m["id"] is None, since=n
        )
    not_objects = [
        b"[]",
        b"[1, 2]",
        b'"str"',
        b"null",
        b"42",
        # An id beyond 64 bits is read as a float: not an id.
        b'{"jsonrpc":"2.0","id":99999999999999999999999,"method":"shutdown"}',
    ]
    for body in not_objects:
        n = len(server.messages)
        server.send_raw(frame(body))
        resp = server.wait_for(lambda m: "error" in m, 1.0, since=n)
        assert resp["id"] is None and resp["error"]["code"] == -32600
    # Recoverable ids get their own error.
    server.send({"jsonrpc": "1.0", "id": 7, "method": "agentls.status"})
    assert _error(server, 7)["code"] == -32600
    server.send({"jsonrpc": "2.0", "id": 8, "method": 12})
    assert _error(server, 8)["code"] == -32600
    n = len(server.messages)
    server.send({"jsonrpc": "2.0", "id": {"a": 1}, "method": "workspace/executeCommand"})
    resp = server.wait_for(lambda m: m.get("id") is None and "error" in m, 1.0, since=n)
    assert resp["error"]["code"] == -32600
    server.send({"jsonrpc": "2.0", "id": 9})
    assert _error(server, 9)["code"] == -32600
    # Strings that are hard to encode: lone surrogates, 1 MB, duplicate keys.
    n = len(server.messages)
    server.send_raw(
        frame(
            b'{"jsonrpc":"2.0","id":"sur","method":"workspace/executeCommand",'
            b'"params":{"command":"agentls.runs.cancel","arguments":[{"id":"\\ud800x"}]}}'
        )
    )
    resp = server.wait_for(lambda m: m.get("error", {}).get("code") == -32700, 1.0, since=n)
    assert resp["id"] is None  # orjson refuses lone surrogates: not JSON we can trust
    rid = server.command("agentls.runs.cancel", {"id": "a" * 1_000_000})
    assert server.result(rid) == {"cancelled": False}
    server.send_raw(
        frame(
            b'{"jsonrpc":"2.0","id":"dup","id":"dup2","method":"workspace/executeCommand",'
            b'"params":{"command":"agentls.status","arguments":[]}}'
        )
    )
    server.wait_for(lambda m: m.get("id") in ("dup", "dup2"))
    _healthy(server)
    _finish(server)


def test_p3_unknown_methods(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    assert _error(server, server.request("no/suchMethod", {}))["code"] == -32601
    assert _error(server, server.request("$/noSuchRequest", {}))["code"] == -32601
    assert _error(server, server.request("textDocument/formatting", {}))["code"] == -32601
    server.notify("no/suchNotification", {"x": 1})
    server.notify("$/noSuchNotification", {"x": 1})
    _healthy(server)
    assert server.notifications("window/showMessage") == []
    _finish(server)


def test_p4_known_methods_with_invalid_params(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    cases: list[tuple[str, Any, bool]] = [
        ("workspace/executeCommand", None, True),
        ("workspace/executeCommand", [], False),
        ("workspace/executeCommand", "x", False),
        ("textDocument/didOpen", {"textDocument": {"uri": 5}}, False),
        ("workspace/didChangeWorkspaceFolders", {"event": {"added": 3}}, False),
        ("textDocument/hover", {}, False),
        ("textDocument/codeAction", {"textDocument": {"uri": 1}}, False),
        ("textDocument/completion", {"textDocument": {"uri": "file:///x"}, "position": "x"}, False),
        ("textDocument/codeLens", None, True),
    ]
    for method, params, omit in cases:
        started = time.monotonic()
        err = _error(server, server.request(method, params, omit=omit))
        assert err["code"] == -32602, (method, err)
        assert time.monotonic() - started < 10  # a hang bound
        assert method in err["message"]
    # Bad notifications are dropped without a pop-up; the session goes on.
    server.notify("textDocument/didOpen", {"textDocument": "nope"})
    server.notify("workspace/didChangeWatchedFiles", omit=True)
    server.notify("$/cancelRequest", {"id": [1]})
    _healthy(server)
    assert server.notifications("window/showMessage") == []
    _finish(server)


def test_p5_execute_command_is_strict(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)

    def err(params: Any) -> dict[str, Any]:
        return _error(server, server.request("workspace/executeCommand", params))

    assert "not defined" in err({"command": "agentls.nope", "arguments": []})["message"]
    e = err({"command": 123, "arguments": []})
    assert e["code"] == -32602 and "'command' must be a string" in e["message"]
    e = err({"command": "agentls.status", "arguments": "notalist"})
    assert e["code"] == -32602 and "'arguments' must be a list" in e["message"]
    e = err({"command": "agentls.status", "arguments": {"a": 1}})
    assert e["code"] == -32602 and "'arguments'" in e["message"]
    e = err({"command": "agentls.run", "arguments": [{"agent": "echo"}, {"x": 1}]})
    assert e["code"] == -32602
    e = err({"command": "agentls.run", "arguments": [{"agent": 5, "task": "t"}]})
    assert e["code"] == -32602 and "agent" in e["message"]
    e = err({"command": "agentls.run", "arguments": [{"agent": "echo", "task": "t", "bogus": 1}]})
    assert e["code"] == -32602 and "bogus" in e["message"]
    e = err({"command": "agentls.run", "arguments": [{"agent": "echo", "task": "x" * 10_000_000}]})
    assert e["code"] == -32602
    # A missing arguments list is an empty one (LSP makes it optional).
    rid = server.request("workspace/executeCommand", {"command": "agentls.status"})
    assert "runs" in server.result(rid)
    _healthy(server)
    _finish(server)


def test_p6_lifecycle_order(start_server: Start, workspace: Path) -> None:
    server = start_server()
    # Before initialize: -32002 for requests, notifications dropped.
    assert _error(server, server.command("agentls.status"))["code"] == -32002
    assert _error(server, server.request("shutdown", omit=True))["code"] == -32002
    server.notify("initialized", {})
    server.notify("workspace/didChangeConfiguration", {"settings": {}})
    server.initialize(workspace)
    # A second initialize is refused.
    second = server.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert _error(server, second)["code"] == -32600
    _healthy(server)
    rid = server.request("shutdown", omit=True)
    assert server.result(rid, 10.0) is None
    # After shutdown: requests -32600, notifications ignored, exit 0.
    assert _error(server, server.command("agentls.status"))["code"] == -32600
    assert _error(server, server.request("shutdown", omit=True))["code"] == -32600
    server.notify("workspace/didChangeConfiguration", {"settings": {}})
    server.notify("exit", omit=True)
    assert server.wait_exit(10.0) == 0
    assert server.problems(canaries=(CANARY,)) == []


def test_p7_ids(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    # Ids of every legal shape, and ids 1 and "1" are different requests.
    for rid in ["a-string", -5, 2**53, 0, "1", 1, "", "é😀"]:
        assert "runs" in server.result(server.command("agentls.status", id=rid))
    # A duplicate of an id still in flight is refused; the original is answered once.
    slow = server.command("agentls.run", {"agent": "slow", "task": "t"}, id="same")
    server.wait_for(lambda m: m.get("method") == "agentls/runStarted")
    dup = _error(server, server.command("agentls.status", id="same"))
    assert dup["code"] == -32600 and "in flight" in dup["message"]
    server.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "same"}})
    original = server.wait_for(
        lambda m: m.get("id") == "same" and m.get("error", {}).get("code") == -32800, 10.0
    )
    assert original
    assert len(server.responses_to(slow)) == 2  # the refusal of the duplicate, then the original
    # Once answered, the id may be used again.
    n = len(server.messages)
    server.command("agentls.status", id="same")
    again = server.wait_for(lambda m: m.get("id") == "same", since=n)
    assert "runs" in again["result"]
    _healthy(server)
    assert server.problems(canaries=(CANARY,), allow_unanswered=True) == []
    assert server.shutdown_and_exit() == 0


def test_bookkeeping_does_not_grow_with_requests(start_server: Start, workspace: Path) -> None:
    """pygls keeps a finished future per notification and per command step; we drop them."""
    server = start_server()
    server.initialize(workspace)
    uri = (workspace / "src" / "app.py").as_uri()
    for i in range(30):
        assert server.call("agentls.run", {"agent": "echo", "task": f"t{i}"})["status"] == (
            "succeeded"
        )
        doc = {"uri": uri, "languageId": "python", "version": i, "text": "x"}
        server.notify("textDocument/didOpen", {"textDocument": doc})
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        server.call("agentls.status")
    transport = server.call("agentls.metrics")["transport"]
    assert transport["pending_requests"] <= 3, transport  # the metrics request itself
    assert transport["progress_tokens"] == 0
    _finish(server)
