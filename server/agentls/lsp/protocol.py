"""The JSON-RPC layer: owner of what a client message may do before pygls sees it, and of replies.

pygls 2.1.1 trusts its input (docs/reliability.md): a request without ``params`` or with params it
cannot structure is never answered, ``"arguments": "abc"`` becomes ``['a', 'b', 'c']``, ``123``
becomes ``"123"``, requests are served before ``initialize`` and dropped after ``shutdown``,
``shutdown`` with requests in flight fails with ``dictionary changed size during iteration``, and
error responses carry the server's traceback. This subclass closes each of those:

- ``receive`` inspects every decoded message *before* pygls structures it, and answers each
  request exactly once: ``-32600`` for an invalid message or a duplicate in-flight id, ``-32002``
  before ``initialize``, ``-32600`` after ``shutdown`` (and for a second ``initialize``),
  ``-32601`` for an unknown method, ``-32602`` for params that are missing or of the wrong shape
  (``workspace/executeCommand`` needs a string ``command`` and a list ``arguments``). Bad
  notifications are logged and dropped, as JSON-RPC requires.
- The converter is strict for ``str``, ``int``, ``float`` and ``bool``: no silent coercion anywhere
  in the LSP types.
- ``shutdown`` first refuses new requests, then cancels everything in flight (over a copy of the
  table), then runs the server's own shutdown; ``exit`` asks the ``Lifecycle`` for exit code 0 or 1
  instead of raising ``SystemExit`` from inside a callback.
- Responses and notifications are encoded with orjson, and ``Content-Length`` counts bytes.
- Error responses never carry ``data`` (pygls puts a traceback there); internal errors carry a
  generic message, and every error message is scrubbed of secrets.
- A handler's future leaves pygls' bookkeeping when it finishes (pygls keeps notification and
  builtin-step futures forever: about three per command, each holding its result).
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
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import orjson
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage

from agentls.lsp.lifecycle import Lifecycle, Phase
from agentls.redaction import scrub
from agentls.requests import json_kind

logger = logging.getLogger(__name__)

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_NOT_INITIALIZED = -32002
GENERIC_INTERNAL_MESSAGE = "internal error in agentls; see the server log"

_ATTRIBUTE_NOTE = re.compile(r"@ attribute (\w+)")
"""How cattrs notes which field failed ("Structuring class X @ attribute command")."""

_PARAMS_OPTIONAL = frozenset({types.SHUTDOWN, types.EXIT})
"""Methods whose params LSP defines as absent; for every other method a missing ``params`` is
tried as ``{}`` (valid when all fields are optional, e.g. ``initialized``) and else refused."""


@dataclass(frozen=True)
class CommandContext:
    """The executeCommand request a command handler is serving."""

    msg_id: Any
    params: types.ExecuteCommandParams


CURRENT_COMMAND: contextvars.ContextVar[CommandContext | None] = contextvars.ContextVar(
    "agentls_current_command", default=None
)
"""Set while ``workspace/executeCommand`` dispatches; the command's task inherits it."""


class _Refused(Exception):
    """A request that is answered with an error instead of being dispatched."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _valid_id(value: Any) -> bool:
    """LSP ids are integers or strings (``true`` is not an integer, ``null`` is not an id)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _strict(kind: type, accepted: tuple[type, ...]) -> Any:
    """A cattrs structure hook that accepts only JSON values of the right type (no coercion)."""

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and bool not in accepted:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {json_kind(value)}")
        return float(value) if kind is float else value  # type: ignore[arg-type]

    return hook


def _check_execute_command(params: Any) -> None:
    """``workspace/executeCommand`` params as LSP defines them, checked before cattrs coerces."""
    if not isinstance(params, dict):
        raise _Refused(
            INVALID_PARAMS,
            f"workspace/executeCommand: params must be an object, got {json_kind(params)}",
        )
    command = params.get("command")
    if not isinstance(command, str):
        raise _Refused(
            INVALID_PARAMS,
            f"workspace/executeCommand: 'command' must be a string, got {json_kind(command)}",
        )
    arguments = params.get("arguments")
    if arguments is not None and not isinstance(arguments, list):
        raise _Refused(
            INVALID_PARAMS,
            f"workspace/executeCommand: 'arguments' must be a list, got {json_kind(arguments)}",
        )


def _check_cancel(params: Any) -> bool:
    return isinstance(params, dict) and _valid_id(params.get("id"))


class AgentlsProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with the changes listed in the module docstring."""

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        for kind, accepted in (
            (str, (str,)),
            (int, (int,)),
            (float, (int, float)),
            (bool, (bool,)),
        ):
            converter.register_structure_hook(kind, _strict(kind, accepted))
        self.lifecycle = Lifecycle()
        """The session phase and the exit request."""
        self._inflight: set[Any] = set()
        """Ids of client requests accepted and not answered yet (duplicates are refused)."""
        self._pending_writes: set[asyncio.Future[Any]] = set()
        """Writes in flight on asynchronous transports (asyncio keeps only weak references)."""

    # -- inbound --------------------------------------------------------------------------------

    def receive(self, data: Any) -> None:
        """Check one decoded message, answer it if it is refused, else hand it to pygls.

        Never raises for anything the client sent: every failure is a reply or a log line.
        """
        if not isinstance(data, dict):
            self._reply_error(
                None,
                INVALID_REQUEST,
                f"Invalid request: a message must be a JSON object, got {json_kind(data)} "
                "(batches are not supported)",
            )
            return
        has_id = "id" in data
        msg_id = data.get("id")
        if "method" not in data:
            self._receive_response(data, has_id, msg_id)
            return
        method = data["method"]
        reply_id = msg_id if has_id and _valid_id(msg_id) else None
        if has_id and not _valid_id(msg_id):
            self._reply_error(
                None,
                INVALID_REQUEST,
                f"Invalid request: 'id' must be an integer or a string, got {json_kind(msg_id)}",
            )
            return
        if not isinstance(method, str):
            if has_id:
                self._reply_error(
                    reply_id,
                    INVALID_REQUEST,
                    f"Invalid request: 'method' must be a string, got {json_kind(method)}",
                )
            else:
                logger.warning("dropped a notification whose method is %s", json_kind(method))
            return
        if data.get("jsonrpc") != self.VERSION:
            if has_id:
                self._reply_error(
                    reply_id, INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"'
                )
            else:
                logger.warning("dropped a %s notification without jsonrpc 2.0", method[:100])
            return
        if has_id:
            self._receive_request(msg_id, method, data)
        else:
            self._receive_notification(method, data)

    def _receive_request(self, msg_id: Any, method: str, data: dict[str, Any]) -> None:
        if msg_id in self._inflight:
            self._reply_error(
                msg_id,
                INVALID_REQUEST,
                f"Invalid request: id {msg_id!r} is already used by a request in flight",
            )
            return
        try:
            self._admit_request(method, data.get("params"))
            message = self._structure(method, data)
        except _Refused as e:
            self._reply_error(msg_id, e.code, e.message)
            return
        self._inflight.add(msg_id)
        if method == types.INITIALIZE:
            self.lifecycle.phase = Phase.RUNNING
        try:
            self.handle_message(message)
        except Exception:
            logger.exception("request %r (%s) could not be dispatched", msg_id, method[:100])
            if msg_id in self._inflight:
                self._send_response(
                    msg_id,
                    error=types.ResponseError(
                        code=INTERNAL_ERROR, message=GENERIC_INTERNAL_MESSAGE
                    ),
                )

    def _admit_request(self, method: str, params: Any) -> None:
        """Raise ``_Refused`` when the phase, the method or the params' shape rule it out."""
        phase = self.lifecycle.phase
        if phase is Phase.SHUT_DOWN:
            raise _Refused(INVALID_REQUEST, f"{method[:100]}: the server is shutting down")
        if method == types.INITIALIZE:
            if phase is not Phase.UNINITIALIZED:
                raise _Refused(INVALID_REQUEST, "initialize: the server is already initialized")
        elif phase is Phase.UNINITIALIZED:
            raise _Refused(SERVER_NOT_INITIALIZED, f"{method[:100]}: the server is not initialized")
        if not self._known(method):
            raise _Refused(METHOD_NOT_FOUND, f"Method not found: {method[:100]}")
        if method == types.WORKSPACE_EXECUTE_COMMAND:
            _check_execute_command(params)

    def _receive_notification(self, method: str, data: dict[str, Any]) -> None:
        if method == types.EXIT:
            for _ in self.lsp_exit():
                pass
            return
        phase = self.lifecycle.phase
        if phase is not Phase.RUNNING:
            logger.info("dropped a %s notification: the session is %s", method[:100], phase.value)
            return
        if method == types.CANCEL_REQUEST:
            if not _check_cancel(data.get("params")):
                logger.warning("dropped a $/cancelRequest without a valid id")
                return
        elif not self._known(method):
            if not method.startswith("$/"):
                logger.info("ignored the unknown notification %s", method[:100])
            return
        try:
            message = self._structure(method, data)
        except _Refused as e:
            logger.warning("dropped a %s notification: %s", method[:100], e.message)
            return
        try:
            self.handle_message(message)
        except Exception:
            logger.exception("notification %s could not be dispatched", method[:100])

    def _receive_response(self, data: dict[str, Any], has_id: bool, msg_id: Any) -> None:
        """A reply from the client to one of our requests (or a message that is not anything)."""
        if not has_id or not ("result" in data or "error" in data):
            reply_id = msg_id if _valid_id(msg_id) else None
            self._reply_error(
                reply_id,
                INVALID_REQUEST,
                "Invalid request: a message needs a 'method' (request or notification) "
                "or a 'result'/'error' (response)",
            )
            return
        if data.get("jsonrpc") != self.VERSION or not (_valid_id(msg_id) or msg_id is None):
            logger.warning("dropped a malformed response")
            return
        try:
            message = self.structure_message(data)
            self.handle_message(message)
        except Exception:
            logger.warning("dropped a response that could not be read", exc_info=True)

    def _known(self, method: str) -> bool:
        return method in self.fm.builtin_features or method in self.fm.features

    def _structure(self, method: str, data: dict[str, Any]) -> Any:
        """pygls' structuring, with a missing ``params`` tried as ``{}`` and failures refused."""
        kind = self.get_message_type(method) or (
            JsonRPCRequestMessage if "id" in data else JsonRPCNotification
        )
        if data.get("params") is None and method not in _PARAMS_OPTIONAL:
            try:
                return self._converter.structure({**data, "params": {}}, kind)
            except Exception:
                raise _Refused(INVALID_PARAMS, f"{method[:100]}: params are required") from None
        try:
            return self._converter.structure(data, kind)
        except Exception as e:
            detail = _structure_detail(e)
            raise _Refused(
                INVALID_PARAMS, f"{method[:100]}: invalid params{': ' + detail if detail else ''}"
            ) from None

    # -- lifecycle ------------------------------------------------------------------------------

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """Refuse new requests, cancel those in flight, then run the server's own shutdown."""
        self.lifecycle.phase = Phase.SHUT_DOWN
        current = self.msg_id
        # Cancelling a concurrent future runs its callbacks at once, and they pop entries from
        # this table: iterate over a copy (pygls iterates the live dict and fails, F4).
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        self._shutdown = True
        return None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """Ask the transport to end the process: 0 after ``shutdown``, 1 without."""
        code = 0 if self.lifecycle.phase is Phase.SHUT_DOWN else 1
        self.lifecycle.request_exit(code, "exit notification")
        yield from ()

    # -- outbound -------------------------------------------------------------------------------

    def _reply_error(self, msg_id: Any, code: int, message: str) -> None:
        """An error reply to a message that was never dispatched (does not touch ``_inflight``)."""
        logger.info("refused a message (%d): %s", code, message)
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": scrub(message)}}
        )

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
        try:
            res = self.writer.write(payload)
        except (BrokenPipeError, ConnectionError, ValueError):
            # The client is gone (or closed our stdout): nobody to answer; end the session.
            logger.warning("the client closed the connection; exiting")
            self.lifecycle.request_exit(1, "output stream closed")
            return
        if inspect.isawaitable(res):  # TCP/WebSocket writers; stdio writes synchronously
            self._pending_writes.add(fut := asyncio.ensure_future(res))
            fut.add_done_callback(self._pending_writes.discard)

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        self._inflight.discard(msg_id)
        if error is not None:
            message = (
                scrub(error.message) if error.code != INTERNAL_ERROR else GENERIC_INTERNAL_MESSAGE
            )
            error = types.ResponseError(code=error.code, message=message)
        elif isinstance(result, dict | list | str | int | float | bool) or result is None:
            # Plain JSON (every agentls command result): hand it to orjson as it is. Through
            # pygls it would be wrapped in an attrs message that cattrs walks entirely before
            # encoding (8 ms of a 10 MB preview). Typed LSP results keep pygls' path.
            self._result_types.pop(msg_id, None)
            self._send_data({"jsonrpc": "2.0", "id": msg_id, "result": result})
            return
        super()._send_response(msg_id, result, error)

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: Any = None,
        kwargs: Any = None,
    ) -> None:
        """pygls' dispatch, minus its leak: the futures of notification handlers and of the inner
        steps of builtin handlers (every ``executeCommand``) stay in ``_request_futures`` forever,
        each holding its result. A finished future is dropped once its callback has run."""

        def done(fut: Any) -> None:
            try:
                callback(fut)
            finally:
                if self._request_futures.get(msg_id) is fut:
                    del self._request_futures[msg_id]

        super()._execute_handler(msg_id, handler, done, args, kwargs)

    def _run_generator(self, future: Any, *, gen: Any, result_future: Any) -> None:
        """pygls' step of a builtin handler (``workspace/executeCommand``...), which lets a
        ``BaseException`` from the inner handler escape and leaves the request unanswered: a
        cancellation becomes a cancelled request, anything else an internal error."""
        if result_future.cancelled() and future is not None and future.done():
            # Already answered -32800; pygls returns without looking at the step's outcome,
            # and asyncio would log "Task exception was never retrieved" for a failed one.
            if not future.cancelled():
                future.exception()
            return
        try:
            super()._run_generator(future, gen=gen, result_future=result_future)
        except BaseException as e:
            if not result_future.done():
                if isinstance(e, asyncio.CancelledError):
                    result_future.cancel()
                else:
                    logger.error("a handler failed with %s", type(e).__name__, exc_info=e)
                    result_future.set_exception(RuntimeError(type(e).__name__))
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        """Answer a request whose handler finished: its result, -32800 if cancelled, its
        ``JsonRpcException`` (an expected refusal: logged in one line, where pygls logs a
        traceback at ERROR), or a generic internal error for anything else, including a
        ``BaseException`` that is not an ``Exception`` (pygls lets it escape and never answers).
        """
        self._request_futures.pop(msg_id, None)
        if future.cancelled():
            self._send_response(
                msg_id,
                error=JsonRpcRequestCancelled(
                    f"Request with id {msg_id!r} is canceled"
                ).to_response_error(),
            )
            return
        try:
            result = future.result()
        except JsonRpcException as e:
            logger.info("request %r refused (%d): %s", msg_id, e.code, e.message)
            self._send_response(msg_id, error=e.to_response_error())
            return
        except BaseException as e:
            logger.error("request %r failed with %s", msg_id, type(e).__name__, exc_info=e)
            self._send_response(
                msg_id,
                error=types.ResponseError(code=INTERNAL_ERROR, message=GENERIC_INTERNAL_MESSAGE),
            )
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            return
        self._send_response(msg_id, result=result)

    def _handle_response(self, msg_id: Any, result: Any | None = None, error: Any = None) -> None:
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            self._request_futures.pop(msg_id, None)
            logger.debug("dropping a late reply to %s: its waiter is gone", msg_id)
            return
        super()._handle_response(msg_id, result, error)

    # -- commands -------------------------------------------------------------------------------

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


def _camel(name: str) -> str:
    """The LSP field a Python attribute came from (``text_document`` is ``textDocument``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _structure_detail(error: BaseException) -> str:
    """The first leaf of a cattrs validation error, as a short message (no Python internals)."""
    cause: BaseException = error
    path: list[str] = []
    for _ in range(10):
        for note in getattr(cause, "__notes__", ()):
            match = _ATTRIBUTE_NOTE.search(str(note))
            if match:
                path.append(match.group(1))
        subs = getattr(cause, "exceptions", None)
        if not subs:
            break
        cause = subs[0]
    for note in getattr(cause, "__notes__", ()):
        match = _ATTRIBUTE_NOTE.search(str(note))
        if match:
            path.append(match.group(1))
    where = ".".join(_camel(p) for p in dict.fromkeys(path))
    if isinstance(cause, KeyError):
        return f"missing {where or 'a required field'}"
    if isinstance(cause, TypeError | ValueError):
        text = scrub(str(cause))[:200]
        return f"{where}: {text}" if where else text
    return where
