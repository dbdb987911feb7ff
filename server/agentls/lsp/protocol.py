"""The JSON-RPC layer: pygls' protocol with faster encoding, sanitized errors and real cancellation.

What this subclass changes, and why:
- Responses and notifications are encoded with orjson, and ``Content-Length`` counts bytes (stock
  pygls counts characters, which only works for ASCII-escaped output).
- Error responses never carry ``data`` (pygls puts the server's traceback there), and internal
  errors carry a generic message: exception text can hold paths or secrets.
- ``workspace/executeCommand`` remembers its params (pygls drops the client's ``workDoneToken``) and
  the request id, so a command can link ``$/cancelRequest`` to its own task: stock pygls answers the
  cancel but lets the command run on.
- A late reply to a server->client request whose waiter was cancelled is dropped instead of raising
  ``InvalidStateError`` (pygls #621, fixed upstream after 2.1.1).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import orjson
from lsprotocol import types
from pygls.protocol import LanguageServerProtocol, lsp_method

logger = logging.getLogger(__name__)

INTERNAL_ERROR = -32603
GENERIC_INTERNAL_MESSAGE = "internal error in agentls; see the server log"


@dataclass(frozen=True)
class CommandContext:
    """The executeCommand request a command handler is serving."""

    msg_id: Any
    params: types.ExecuteCommandParams


CURRENT_COMMAND: contextvars.ContextVar[CommandContext | None] = contextvars.ContextVar(
    "agentls_current_command", default=None
)
"""Set while ``workspace/executeCommand`` dispatches; the command's task inherits it."""


class AgentlsProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with the changes listed in the module docstring."""

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        self._pending_writes: set[asyncio.Future[Any]] = set()
        """Writes in flight on asynchronous transports (asyncio keeps only weak references)."""

    def _send_data(self, data: Any) -> None:
        if not data or self.writer is None:
            return
        try:
            body = orjson.dumps(data, default=self._serialize_message)
        except TypeError:
            logger.exception("could not encode an outgoing message; sending an error instead")
            msg_id = getattr(data, "id", None)
            if msg_id is None:
                return
            body = orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": msg_id,
                    "error": {"code": INTERNAL_ERROR, "message": GENERIC_INTERNAL_MESSAGE},
                }
            )
        if self._include_headers:
            header = (
                f"Content-Length: {len(body)}\r\n"
                f"Content-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n"
            ).encode("ascii")
            payload = header + body
        else:
            payload = body
        res = self.writer.write(payload)
        if inspect.isawaitable(res):  # TCP/WebSocket writers; stdio writes synchronously
            self._pending_writes.add(fut := asyncio.ensure_future(res))
            fut.add_done_callback(self._pending_writes.discard)

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        if error is not None:
            message = error.message if error.code != INTERNAL_ERROR else GENERIC_INTERNAL_MESSAGE
            error = types.ResponseError(code=error.code, message=message)
        super()._send_response(msg_id, result, error)

    def _handle_response(self, msg_id: Any, result: Any | None = None, error: Any = None) -> None:
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            self._request_futures.pop(msg_id, None)
            logger.debug("dropping a late reply to %s: its waiter is gone", msg_id)
            return
        super()._handle_response(msg_id, result, error)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(
        self, params: types.ExecuteCommandParams
    ) -> Generator[Any, Any, Any]:
        """Remember the request for the command's task, then dispatch as pygls does."""
        CURRENT_COMMAND.set(CommandContext(self.msg_id, params))
        return (yield from super().lsp_workspace__execute_command(params))

    def link_cancellation(self) -> None:
        """Make ``$/cancelRequest`` for the current command cancel the current task.

        pygls cancels only the outer future of ``workspace/executeCommand`` (and answers -32800);
        this propagates that cancel to the task that runs the command.
        """
        ctx = CURRENT_COMMAND.get()
        task = asyncio.current_task()
        if ctx is None or task is None:
            return
        outer = self._request_futures.get(ctx.msg_id)
        if outer is None:
            return

        def propagate(fut: Any) -> None:
            if fut.cancelled() and not task.done():
                task.cancel()

        outer.add_done_callback(propagate)
