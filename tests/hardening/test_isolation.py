"""Catalogue F1 and D5/D6 (docs/reliability.md): a failing handler stays one failed request.

A command whose service call raises (with a secret in the message) is answered ``-32803`` with a
generic message, no ``data``, no secret; a ``BaseException`` that is not an ``Exception`` is still
answered; a failing notification handler shows one generic pop-up, never the exception text; the
session goes on after each.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentls.service import AgentService
from tests.hardening.conftest import CANARY
from tests.hardening.inproc import InProcess, initialize_params


class Weird(BaseException):
    """Not an Exception: escapes ``except Exception`` everywhere."""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))


async def _started() -> InProcess:
    s = InProcess()
    s.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()})
    s.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    await s.settle()
    return s


def _status(s: InProcess, rid: object) -> None:
    s.send(
        {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "workspace/executeCommand",
            "params": {"command": "agentls.status", "arguments": []},
        }
    )


async def test_f1_handler_raising_with_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    s = await _started()

    def boom(self: AgentService) -> None:
        raise RuntimeError(f"could not connect: api_key={CANARY}")

    monkeypatch.setattr(AgentService, "status", boom)
    _status(s, 2)
    await s.settle()
    [resp] = s.responses(2)
    assert resp["error"]["code"] == -32803
    assert "data" not in resp["error"]
    assert CANARY not in str(s.out.messages)

    def weird(self: AgentService) -> None:
        raise Weird(CANARY)

    monkeypatch.setattr(AgentService, "status", weird)
    _status(s, 3)
    await s.settle()
    [resp] = s.responses(3)
    assert resp["error"] == {
        "code": -32603,
        "message": "internal error in agentls; see the server log",
    }
    monkeypatch.undo()
    _status(s, 4)
    await s.settle()
    assert "runs" in s.responses(4)[0]["result"]
    assert CANARY not in str(s.out.messages)
    await s.close()


async def test_d6_notification_handler_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    s = await _started()

    def boom(self: AgentService, paths: object) -> None:
        raise RuntimeError(f"token=ghp_{'x' * 36} and {CANARY}")

    monkeypatch.setattr(AgentService, "files_changed", boom)
    for _ in range(3):
        s.send(
            {
                "jsonrpc": "2.0",
                "method": "workspace/didChangeWatchedFiles",
                "params": {"changes": [{"uri": "file:///tmp/x.py", "type": 2}]},
            }
        )
    await s.settle()

    def popups() -> list[dict[str, Any]]:
        return [m for m in s.out.messages if m.get("method") == "window/showMessage"]

    for _ in range(1000):  # the handlers wait for the service to start: 10 s only catches a hang
        if popups():
            break
        await asyncio.sleep(0.01)
    _status(s, 4)  # answered after the three notifications were handled (messages are in order)
    await s.settle(timeout=10)
    assert len(popups()) == 1  # once, not per failure
    text = popups()[0]["params"]["message"]
    assert "internal error" in text and "RuntimeError" not in text and "ghp_" not in text
    assert CANARY not in str(s.out.messages)
    _status(s, 5)
    await s.settle()
    assert "runs" in s.responses(5)[0]["result"]
    await s.close()
