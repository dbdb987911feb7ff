"""Catalogue P8: random message sequences keep every protocol invariant (Hypothesis).

Sequences of up to 50 messages mix ``initialize``, ``initialized``, ``didChangeWatchedFiles``
(built from lsprotocol's types), ``executeCommand`` with good and bad arguments, cancels, repeated
ids, ``shutdown``, ``exit`` and junk. After each sequence: no exception escaped, every request
sent before ``exit`` was answered exactly once per send, the phase rules held (-32002 before
``initialize``, -32600 after ``shutdown``), no error carried ``data``, and the exit code is 0
exactly when ``shutdown`` came first. Shrunk counterexamples found while building this are kept
as explicit ``@example`` cases.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.protocol import default_converter

from tests.hardening.inproc import InProcess, initialize_params

_converter = default_converter()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
ids = st.one_of(st.integers(0, 5), st.sampled_from(["a", "b", "0"]))
commands = st.sampled_from(
    [
        "agentls.status",
        "agentls.agents.list",
        "agentls.history.list",
        "agentls.runs.cancel",
        "agentls.metrics",
        "agentls.cache.clear",
        "agentls.run",
        "agentls.context.preview",
        "agentls.findings.clear",
        "agentls.ask",
        "agentls.no.such",
    ]
)


def _request(method: str, msg_id: Any, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def _note(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


messages = st.one_of(
    ids.map(lambda i: _request("initialize", i, initialize_params())),
    st.just(_note("initialized", {})),
    st.builds(types.DidChangeWatchedFilesParams).map(
        lambda p: _note("workspace/didChangeWatchedFiles", _converter.unstructure(p))
    ),
    st.tuples(ids, commands, st.lists(json_values, max_size=2)).map(
        lambda t: _request("workspace/executeCommand", t[0], {"command": t[1], "arguments": t[2]})
    ),
    st.tuples(ids, commands, json_values).map(
        lambda t: _request("workspace/executeCommand", t[0], {"command": t[1], "arguments": t[2]})
    ),
    ids.map(lambda i: _note("$/cancelRequest", {"id": i})),
    ids.map(lambda i: {"jsonrpc": "2.0", "id": i, "method": "shutdown"}),
    st.just({"jsonrpc": "2.0", "method": "exit"}),
    json_values,
    st.tuples(ids, st.text(max_size=12), json_values).map(lambda t: _request(t[1], t[0], t[2])),
)


async def _play(sequence: list[Any]) -> None:
    s = InProcess()
    expect: dict[int, str] = {}
    """Index in ``s.sent`` -> the phase a request met, for those the phase must refuse."""
    shut_down_before_exit: bool | None = None
    for msg in sequence:
        if s.exit_requested:
            break  # the transport stops reading here
        phase = s.ls.lsp.lifecycle.phase.value
        is_request = isinstance(msg, dict) and "method" in msg and "id" in msg
        method = msg.get("method") if isinstance(msg, dict) else None
        refused_by_phase = phase == "shut_down" or (
            phase == "uninitialized" and method != "initialize"
        )
        valid = is_request and isinstance(method, str) and type(msg["id"]) in (int, str)
        if valid and refused_by_phase:
            expect[len(s.sent)] = phase
        s.send(msg)
        if method == "exit" and isinstance(msg, dict) and "id" not in msg:
            shut_down_before_exit = phase == "shut_down"
        await asyncio.sleep(0)
    await s.settle()
    exited = s.exit_requested
    # Every request answered exactly once per send (all of them when no exit cut the session).
    for msg_id in dict.fromkeys(s.sent):
        got = len(s.responses(msg_id))
        sent = s.sent.count(msg_id)
        if exited:
            assert got <= sent, (msg_id, got, sent)
        else:
            assert got == sent, (msg_id, got, sent, s.out.messages[-5:])
    for index, why in expect.items():
        msg_id = s.sent[index]
        if s.sent.count(msg_id) > 1:
            continue  # responses cannot be attributed to one send
        [resp] = s.responses(msg_id)
        wanted = -32002 if why == "uninitialized" else -32600
        assert resp.get("error", {}).get("code") == wanted, (why, resp)
    for m in s.out.messages:
        if "error" in m:
            assert set(m["error"]) == {"code", "message"}, m
        if m.get("method") == "window/showMessage":
            assert "Error in server" not in m["params"]["message"]
    code = await s.close()
    if shut_down_before_exit is not None:
        assert code == (0 if shut_down_before_exit else 1)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(messages, max_size=50))
@example(
    [
        _request("initialize", 0, initialize_params()),
        {"jsonrpc": "2.0", "id": 0, "method": "shutdown"},
    ]
)
@example(
    [
        _request("initialize", 0, initialize_params()),
        _note("initialized", {}),
        _request("workspace/executeCommand", 0, {"command": "agentls.status", "arguments": []}),
        _request("workspace/executeCommand", 0, {"command": "agentls.status", "arguments": []}),
    ]
)
@example([{"jsonrpc": "2.0", "method": "exit"}])
@example([_request("initialize", 0, initialize_params()), _note("$/cancelRequest", {"id": 0})])
@pytest.mark.timeout(400)
def test_p8_random_sequences_keep_the_invariants(sequence: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "AGENTLS_DATA_DIR")}
        os.environ["XDG_CONFIG_HOME"] = tmp
        os.environ["AGENTLS_DATA_DIR"] = tmp
        try:
            asyncio.run(_play(sequence))
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
