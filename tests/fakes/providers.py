"""Fake model providers: real HTTP/1.1 servers on 127.0.0.1 with scripted faults.

``FakeProvider("openai")`` speaks the streaming subset of OpenAI's Chat Completions API
(``POST /v1/chat/completions``, ``GET /v1/models``); ``FakeProvider("anthropic")`` speaks the
streaming Messages API (``POST /v1/messages``, ``GET /v1/models``). Both answer like the real
services do: chunked ``text/event-stream`` bodies, JSON error bodies, 400 for a request the real
API would reject, 401 for a wrong key.

Each server runs its own event loop in a daemon thread on an ephemeral port, so it keeps serving
while the code under test blocks or is cancelled, and a server subprocess (end-to-end tests) can
reach it as well as in-process tests. Tests script the next answers with ``script(...)`` (the
``Reply`` helpers below: ``stream``, ``trickle``, ``status``, ``reset_before``, ``reset_during``,
``cut_short``, ``stall``, ``provider_error``, ``raw``, ``oversize``); when the script is empty a
normal answer is given. Every request is recorded (``requests``), and a client that drops the
connection before its answer is complete is noticed (``disconnects``, ``wait_disconnect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

ProviderKind = Literal["openai", "anthropic"]

DEFAULT_CHUNKS = ("Hello", ", ", "world", "!")
DEFAULT_USAGE = (12, 4)
DEFAULT_MODEL = "fake-model"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the helper functions rather than directly."""

    kind: Literal["stream", "status", "reset_before", "raw", "oversize"] = "stream"
    chunks: tuple[str, ...] = DEFAULT_CHUNKS
    usage: tuple[int, int] = DEFAULT_USAGE
    then: Literal["end", "reset", "close", "stall", "error"] = "end"
    """What happens after ``after`` text chunks: the normal end, a TCP reset, a clean end of the
    body without the provider's end marker, a stall, or a provider error event."""
    after: int | None = None
    """How many text chunks are sent before ``then`` (None: all of them). The provider's preamble
    (OpenAI's role chunk; Anthropic's message_start, content_block_start, ping) goes first."""
    delay: float = 0.0
    """Seconds to wait before each write (each event, or each piece of a trickle)."""
    piece: int = 0
    """When > 0, the body is written in pieces of this many bytes (a trickle that splits lines,
    events and UTF-8 characters)."""
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/event-stream"
    message: str = "Overloaded"
    """The provider error's message (``then="error"``)."""
    size: int = 0
    """Bytes to send for ``oversize``."""
    hold: float = 30.0
    """Seconds a stall lasts if the client does not give up first."""


def stream(*chunks: str, usage: tuple[int, int] = DEFAULT_USAGE, delay: float = 0.0) -> Reply:
    """A normal streamed answer of ``chunks`` (default: "Hello, world!")."""
    return Reply(chunks=chunks or DEFAULT_CHUNKS, usage=usage, delay=delay)


def trickle(*chunks: str, piece: int = 3, delay: float = 0.002) -> Reply:
    """A normal answer written ``piece`` bytes at a time, ``delay`` seconds apart."""
    return Reply(chunks=chunks or DEFAULT_CHUNKS, piece=piece, delay=delay)


def status(code: int, body: Any = None, **headers: str) -> Reply:
    """A non-streaming answer: ``code`` with a JSON (or text) body and extra headers.

    Header keyword names use underscores for dashes: ``retry_after="1"`` sends ``retry-after: 1``.
    """
    if body is None:
        body = {"error": {"type": "server_error", "message": f"scripted {code}"}}
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    content_type = "text/plain" if isinstance(body, str) else "application/json"
    pairs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Reply(kind="status", status=code, body=raw, headers=pairs, content_type=content_type)


def reset_before() -> Reply:
    """Read the request, then reset the connection without answering."""
    return Reply(kind="reset_before")


def reset_during(after: int, *chunks: str) -> Reply:
    """Start a normal answer, then reset the connection after ``after`` text chunks."""
    return Reply(chunks=chunks or DEFAULT_CHUNKS, then="reset", after=after)


def cut_short(after: int) -> Reply:
    """End the HTTP body cleanly after ``after`` text chunks, without the provider's end marker."""
    return Reply(then="close", after=after)


def stall(after: int, hold: float = 30.0) -> Reply:
    """Send ``after`` text chunks, then nothing for ``hold`` seconds or until the client leaves."""
    return Reply(then="stall", after=after, hold=hold)


def provider_error(after: int, message: str = "Overloaded") -> Reply:
    """Send ``after`` text chunks, then the provider's in-stream error event with ``message``."""
    return Reply(then="error", after=after, message=message)


def raw(body: bytes, content_type: str = "text/event-stream") -> Reply:
    """A 200 answer whose body is exactly ``body`` (malformed SSE, bad JSON, a wrong type...)."""
    return Reply(kind="raw", body=body, content_type=content_type)


def oversize(size: int) -> Reply:
    """A well-formed stream that keeps going for ``size`` bytes (or until the client leaves)."""
    return Reply(kind="oversize", size=size)


@dataclass(frozen=True)
class RecordedRequest:
    """What a client sent, as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    json: Any
    """The parsed body, or None when there was none or it was not JSON."""
    connection: int
    """Which TCP connection carried it (1, 2, ... in accept order): shows pooling and retries."""
    at: float = field(default_factory=time.monotonic)


class FakeProvider:
    """A fake provider server in its own thread; use as a context manager or start()/stop()."""

    def __init__(
        self,
        kind: ProviderKind,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        strict_models: bool = False,
    ) -> None:
        """Configure; nothing listens until ``start``.

        Args:
            kind: Which API to speak.
            api_key: When set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``)
                or get the provider's 401.
            model: The model ``GET /v1/models`` lists and streamed answers name.
            strict_models: When set, a request for any other model gets the 404 the real APIs
                give (``The model `haiku` does not exist``), as an OpenAI-compatible server does.
        """
        self.kind = kind
        self.api_key = api_key
        self.model = model
        self.strict_models = strict_models
        self.port = 0
        self._lock = threading.Condition()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[float] = []
        self._open_connections = 0
        self._connections = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Listen on 127.0.0.1 on a free port; returns once connections are accepted."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"fake-{self.kind}", daemon=True
        )
        self._thread.start()
        if not ready.wait(5) or not self.port:
            raise RuntimeError("the fake provider did not start")
        return self

    def stop(self) -> None:
        """Drop every connection, stop listening and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What a backend's ``base_url`` should be to reach this server."""
        root = f"http://127.0.0.1:{self.port}"
        return f"{root}/v1" if self.kind == "openai" else root

    # -- scripting and observation (called from the test thread) ------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue the next answers, in order; after them, normal answers resume."""
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        """How many answers the client abandoned by closing or resetting the connection."""
        with self._lock:
            return len(self._disconnects)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the client has closed every connection (no pool left); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._open_connections == 0, timeout)

    def wait_disconnect(self, timeout: float, count: int = 1) -> bool:
        """Wait until ``count`` abandoned answers have been noticed; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._disconnects) >= count, timeout)

    # -- the server thread ---------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
        finally:
            ready.set()
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def next_reply(self) -> Reply:
        """The next scripted answer (the server thread's side of ``script``)."""
        with self._lock:
            return self._script.popleft() if self._script else Reply()

    def note_disconnect(self) -> None:
        """Record an abandoned answer and wake ``wait_disconnect``."""
        with self._lock:
            self._disconnects.append(time.monotonic())
            self._lock.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = next(self._connections)
        with self._lock:
            self._open_connections += 1
        try:
            while True:
                request = await self._read_request(reader, connection)
                if request is None:
                    return
                with self._lock:
                    self._requests.append(request)
                if not await _Exchange(self, reader, writer, request).answer():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            return  # stop(): end quietly (3.11's stream callback would log a cancelled task)
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()
            with self._lock:
                self._open_connections -= 1
                self._lock.notify_all()

    @staticmethod
    async def _read_request(
        reader: asyncio.StreamReader, connection: int
    ) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed an idle keep-alive connection
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return RecordedRequest(method, target, headers, parsed, connection)


class _Exchange:
    """One request and its answer on one connection."""

    def __init__(
        self,
        provider: FakeProvider,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: RecordedRequest,
    ) -> None:
        self.provider = provider
        self.reader = reader
        self.writer = writer
        self.request = request

    async def answer(self) -> bool:
        """Answer the request; False when the connection must not be reused."""
        problem = self._problem()
        if problem is not None:
            code, body = problem
            return await self._fixed(
                Reply(
                    kind="status",
                    status=code,
                    body=json.dumps(body).encode(),
                    content_type="application/json",
                )
            )
        if self.request.method == "GET":
            data = [{"id": self.provider.model, "object": "model", "type": "model"}]
            return await self._fixed(
                Reply(
                    kind="status",
                    body=json.dumps({"data": data}).encode(),
                    content_type="application/json",
                )
            )
        reply = self.provider.next_reply()
        if reply.kind == "reset_before":
            self._reset()
            return False
        if reply.kind in ("status", "raw"):
            return await self._fixed(reply)
        return await self._stream(reply)

    # -- what the real API would reject -----------------------------------------------------------

    def _problem(self) -> tuple[int, dict[str, Any]] | None:
        request, kind = self.request, self.provider.kind
        chat = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
        if (request.method, request.path) not in (("POST", chat), ("GET", "/v1/models")):
            return 404, _error(kind, "not_found_error", f"no route {request.method} {request.path}")
        key = self.provider.api_key
        if key is not None:
            given = (
                request.headers.get("authorization", "").removeprefix("Bearer ")
                if kind == "openai"
                else request.headers.get("x-api-key", "")
            )
            if given != key:
                return 401, _error(kind, "authentication_error", "invalid x-api-key / API key")
        if request.method == "GET":
            return None
        body = request.json
        if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
            return 400, _error(kind, "invalid_request_error", "model and messages are required")
        if kind == "anthropic":
            if "anthropic-version" not in request.headers:
                return 400, _error(kind, "invalid_request_error", "anthropic-version is required")
            if not isinstance(body.get("max_tokens"), int):
                return 400, _error(kind, "invalid_request_error", "max_tokens: Field required")
        if body.get("stream") is not True:
            return 400, _error(kind, "invalid_request_error", "this fake only streams")
        if self.provider.strict_models and body.get("model") != self.provider.model:
            message = f"The model `{body.get('model')}` does not exist or you do not have access"
            return 404, _error(kind, "not_found_error", message)
        return None

    # -- answers ----------------------------------------------------------------------------------

    async def _fixed(self, reply: Reply) -> bool:
        reason = _REASONS.get(reply.status, "Status")
        lines = [
            f"HTTP/1.1 {reply.status} {reason}",
            f"content-type: {reply.content_type}",
            f"content-length: {len(reply.body)}",
            *(f"{k}: {v}" for k, v in reply.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return await self._send(head + reply.body)

    async def _stream(self, reply: Reply) -> bool:
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        if not await self._send(head):
            return False
        if reply.kind == "oversize":
            return await self._oversize(reply)
        render = _openai_events if self.provider.kind == "openai" else _anthropic_events
        include_usage = bool((self.request.json.get("stream_options") or {}).get("include_usage"))
        preamble, texts, ending = render(reply, self.provider.model, include_usage)
        cut = len(texts) if reply.after is None else reply.after
        body = preamble + texts[:cut]
        if reply.then == "end":
            body += ending
        elif reply.then == "error":
            body.append(_error_event(self.provider.kind, reply.message))
        if not await self._chunks(body, reply):
            return False
        if reply.then == "reset":
            self._reset()
            return False
        if reply.then == "stall":
            await self._hold(reply.hold)
            return False
        return await self._send(b"0\r\n\r\n", count_disconnect=False)

    async def _chunks(self, events: list[bytes], reply: Reply) -> bool:
        """Write one HTTP chunk per event (as real servers flush), or ``piece``-byte slices."""
        if reply.piece:
            body = b"".join(events)
            events = [body[i : i + reply.piece] for i in range(0, len(body), reply.piece)]
        for piece in events:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if not await self._send(b"%x\r\n%s\r\n" % (len(piece), piece)):
                return False
        return True

    async def _oversize(self, reply: Reply) -> bool:
        text = "x" * 4000
        if self.provider.kind == "openai":
            event = _sse({"choices": [{"index": 0, "delta": {"content": text}}]})
        else:
            event = _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            )
        sent = 0
        while sent < reply.size:
            if not await self._send(b"%x\r\n%s\r\n" % (len(event), event)):
                return False
            sent += len(event)
        return await self._send(b"0\r\n\r\n", count_disconnect=False)

    # -- the socket -------------------------------------------------------------------------------

    def _gone(self) -> bool:
        return (
            self.reader.at_eof()
            or self.reader.exception() is not None
            or self.writer.transport.is_closing()
        )

    async def _send(self, data: bytes, *, count_disconnect: bool = True) -> bool:
        if self._gone():
            if count_disconnect:
                self.provider.note_disconnect()
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            if count_disconnect:
                self.provider.note_disconnect()
            return False
        return True

    async def _hold(self, seconds: float) -> None:
        """Send nothing; notice the client leaving within ~10 ms."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._gone():
                self.provider.note_disconnect()
                return
            await asyncio.sleep(0.01)

    def _reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), like a crashed server or a middlebox."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# -- the two wire formats -------------------------------------------------------------------------


def _sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def _error(kind: ProviderKind, error_type: str, message: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"type": error_type, "message": message, "code": None}}


def _error_event(kind: ProviderKind, message: str) -> bytes:
    if kind == "anthropic":
        return _sse(_error(kind, "overloaded_error", message), "error")
    return _sse(_error(kind, "server_error", message))


def _openai_events(
    reply: Reply, model: str, include_usage: bool
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    preamble = [chunk({"role": "assistant", "content": ""})]
    texts = [chunk({"content": text}) for text in reply.chunks]
    ending = [chunk({}, "stop")]
    if include_usage:
        prompt, completion = reply.usage
        ending.append(
            _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        )
    ending.append(_sse("[DONE]"))
    return preamble, texts, ending


def _anthropic_events(
    reply: Reply, model: str, _include_usage: bool
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    prompt, completion = reply.usage
    message: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": 1},
    }
    preamble = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    texts = [
        _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
            "content_block_delta",
        )
        for text in reply.chunks
    ]
    ending = [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": completion},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return preamble, texts, ending


__all__ = [
    "DEFAULT_CHUNKS",
    "DEFAULT_USAGE",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "cut_short",
    "oversize",
    "provider_error",
    "raw",
    "reset_before",
    "reset_during",
    "stall",
    "status",
    "stream",
    "trickle",
]
