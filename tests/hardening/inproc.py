"""An agentls server inside the test process, fed decoded messages the way the transport does.

For what a subprocess makes slow or impossible: hundreds of Hypothesis sequences, and faults
injected into the service (a handler that raises). Everything else in the server is real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from agentls.lsp.server import AgentLanguageServer, create_server


class Capture:
    """The server's writer: keeps every outgoing message, decoded."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.messages.append(orjson.loads(data))

    def close(self) -> None:
        pass


class InProcess:
    """A server plus its captured output; drive it with ``send`` and ``settle``."""

    def __init__(self) -> None:
        self.ls: AgentLanguageServer = create_server()
        self.out = Capture()
        self.ls.protocol.set_writer(self.out, include_headers=False)
        self.sent: list[Any] = []
        """Ids of the requests sent, in order (repeats included)."""

    @property
    def exit_requested(self) -> bool:
        return self.ls.lsp.lifecycle.exit_requested

    def send(self, message: Any) -> None:
        """Hand one decoded message to the protocol, as the transport would."""
        if isinstance(message, dict) and "method" in message and "id" in message:
            self.sent.append(message["id"])
        self.ls.lsp.receive(message)

    async def settle(self, timeout: float = 2.0) -> None:
        """Let handlers run until no request is in flight (or ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        await asyncio.sleep(0)
        while self.ls.lsp._inflight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)

    def responses(self, msg_id: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.out.messages
            if "method" not in m and m.get("id") == msg_id and type(m.get("id")) is type(msg_id)
        ]

    async def close(self) -> int | None:
        """End the session as the transport does; the exit code if one was requested."""
        await asyncio.wait_for(self.ls.aclose(), 5)
        lifecycle = self.ls.lsp.lifecycle
        return lifecycle.exit_code().result() if lifecycle.exit_requested else None


def initialize_params(**extra: Any) -> dict[str, Any]:
    return {"processId": None, "rootUri": None, "capabilities": {}, **extra}
