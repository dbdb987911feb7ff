"""The stdio transport: strict framing, orjson decoding, and a reader on the event loop.

pygls 2.1.1 reads each header line and each body through a thread pool (three thread hops per
message), decodes with the standard library, and on a malformed header silently desynchronizes and
never answers again. This module replaces that reader for stdio:

- ``FrameReader`` parses ``Content-Length`` framing strictly: header lines must end in CRLF and stay
  under ``MAX_HEADER_LINE`` bytes, ``Content-Length`` is required, must be decimal and at most
  ``MAX_CONTENT_LENGTH``; nothing is allocated in proportion to a claimed length before the bytes
  arrive. Any violation raises ``FrameError``: the stream cannot be trusted after it, so the
  server logs it and exits non-zero (editors restart a server that exits; they cannot recover one
  that hangs).
- The body is decoded with orjson; a body that is not JSON is answered with ``-32700`` (id null)
  and the session goes on.
- The decoded value goes to the protocol's ``receive``, which answers or refuses every request
  before pygls structures it (see ``agentls.lsp.protocol``).
- The session ends when the protocol's ``Lifecycle`` asks for an exit (``exit``, a dead client
  process, SIGTERM/SIGHUP/SIGINT), at end of input, or on a framing error; the server is then
  closed with a time bound, so runs are cancelled and their process groups killed.
- stdin is read through an asyncio pipe, with no thread hop; when stdin is not a pipe (a file, a
  terminal) a thread reads it instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, BinaryIO

import orjson

logger = logging.getLogger(__name__)

MAX_HEADER_LINE = 8 * 1024
"""Longest header line accepted, CRLF included."""
MAX_CONTENT_LENGTH = 64 * 1024 * 1024
"""Largest message body accepted (64 MiB)."""
MAX_HEADERS = 32
"""More header lines than this in one frame is not a client, it is noise."""
PARSE_ERROR = -32700


class FrameError(Exception):
    """The byte stream violates the framing; nothing after this point can be trusted."""


class FrameReader:
    """Reads one message body at a time from an ``asyncio.StreamReader``."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def read(self) -> bytes | None:
        """The next body, or None at a clean end of stream (between frames)."""
        length: int | None = None
        for count in range(MAX_HEADERS + 1):
            if count == MAX_HEADERS:
                raise FrameError(f"more than {MAX_HEADERS} header lines")
            line = await self._line(first=count == 0)
            if line is None:
                return None
            if line == b"":
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise FrameError(f"malformed header line {line[:80]!r}")
            if name.strip().lower() == b"content-length":
                text = value.strip()
                if not text.isdigit() or len(text) > 12:
                    raise FrameError(f"invalid Content-Length {text[:40]!r}")
                parsed = int(text)
                if length is not None and parsed != length:
                    raise FrameError("conflicting Content-Length headers")
                length = parsed
        if length is None:
            raise FrameError("missing Content-Length header")
        if length > MAX_CONTENT_LENGTH:
            raise FrameError(f"Content-Length {length} exceeds the {MAX_CONTENT_LENGTH} byte cap")
        try:
            return await self._stream.readexactly(length)
        except asyncio.IncompleteReadError as e:
            raise FrameError(
                f"stream ended inside a body ({len(e.partial)} of {length} bytes)"
            ) from None

    async def _line(self, *, first: bool) -> bytes | None:
        try:
            raw = await self._stream.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as e:
            if first and not e.partial:
                return None
            raise FrameError("stream ended inside a header") from None
        except asyncio.LimitOverrunError:
            raise FrameError(f"header line longer than {MAX_HEADER_LINE} bytes") from None
        line = raw[:-2]
        if b"\n" in line or b"\r" in line:
            raise FrameError("header line with a bare CR or LF")
        return line


async def _stdin_stream(stdin: BinaryIO) -> asyncio.StreamReader:
    """An asyncio stream over stdin: a pipe reader when possible, else a reading thread."""
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=MAX_HEADER_LINE)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), stdin)
        return stream
    except (ValueError, OSError):  # a regular file or something epoll refuses
        pass

    def pump() -> None:
        fd = stdin.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                loop.call_soon_threadsafe(stream.feed_eof)
                return
            loop.call_soon_threadsafe(stream.feed_data, chunk)

    threading.Thread(target=pump, name="agentls-stdin", daemon=True).start()
    return stream


def dispatch(protocol: Any, body: bytes) -> None:
    """Decode one body and hand it to the protocol; a body that is not JSON gets -32700."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        logger.warning("received a message that is not JSON (%d bytes)", len(body))
        protocol._send_data(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": PARSE_ERROR, "message": "Parse error: the message is not JSON"},
            }
        )
        return
    protocol.receive(data)


async def _read_loop(server: Any, reader: FrameReader) -> int:
    """Read and dispatch frames until end of input (0) or a framing error (1)."""
    while True:
        try:
            body = await reader.read()
        except FrameError as e:
            logger.error("protocol framing error, exiting: %s", e)
            return 1
        if body is None:
            logger.info("end of input; exiting")
            return 0
        try:
            dispatch(server.protocol, body)
        except Exception:  # one bad message must not end the session
            logger.exception("could not handle a message")


def _on_signal(server: Any, signum: int) -> None:
    server.protocol.lifecycle.request_exit(128 + signum, f"signal {signal.Signals(signum).name}")


class _StreamWriter:
    """pygls' writer interface over an asyncio stream (TCP); writes are buffered by asyncio."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise BrokenPipeError("the connection is closed")
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


async def serve_tcp(server: Any, host: str, port: int) -> int:
    """Serve one client connecting over TCP (a debugging aid), with the same rules as stdio.

    The first connection is the session; the server ends when it does.
    """
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.get_running_loop().create_future()
    )

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connected.done():
            writer.close()  # one session per process
            return
        connected.set_result((reader, writer))

    listener = await asyncio.start_server(accept, host, port, limit=MAX_HEADER_LINE)
    logger.info("listening on %s:%d", host, port)
    async with listener:
        reader, writer = await connected
    server.protocol.set_writer(_StreamWriter(writer))
    return await _session(server, FrameReader(reader))


class _PipeWriter(asyncio.BaseProtocol):
    """pygls' writer interface over an asyncio write pipe: a large or slow-read frame is
    buffered by the transport instead of blocking the event loop in ``write(2)``."""

    def __init__(self, on_lost: Any) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise BrokenPipeError("the client closed its end of stdout")
        if transport.get_write_buffer_size() > MAX_UNSENT:
            # A client that has not read this much is stuck; holding more only grows memory.
            logger.error("the client stopped reading (%d bytes unsent); exiting", MAX_UNSENT)
            transport.abort()
            raise BrokenPipeError("the client stopped reading")
        transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a deadline API
        """Wait until everything written has reached the pipe (or ``timeout``)."""
        transport = self._transport
        deadline = asyncio.get_running_loop().time() + timeout
        # Polling: asyncio write transports offer no "buffer empty" event without a protocol
        # dance, and this runs once, at exit.
        while (  # noqa: ASYNC110
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() > 0
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.005)


async def _stdout_writer(server: Any, stdout: BinaryIO) -> Any:
    """A non-blocking writer on stdout when it is a pipe, else pygls' blocking one."""
    from pygls.io_ import StdoutWriter

    loop = asyncio.get_running_loop()
    lifecycle = server.protocol.lifecycle
    writer = _PipeWriter(lambda: lifecycle.request_exit(1, "output stream closed"))
    try:
        await loop.connect_write_pipe(lambda: writer, stdout)
    except (ValueError, OSError):  # a regular file or a terminal
        return StdoutWriter(stdout)
    return writer


async def serve_stdio(server: Any, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Run the server over stdio until ``exit``, end of input, a framing error or a signal.

    Returns the process exit code: 0 after ``shutdown`` + ``exit``, 1 for ``exit`` without
    ``shutdown``, a framing error, a closed output or a dead client process, 0 at end of input,
    128 + n for signal n (SIGTERM, SIGHUP, SIGINT). Before returning, the server's ``aclose`` (if
    it has one) gets ``CLOSE_SECONDS`` to cancel runs and close the history, so no child process
    outlives the session.
    """
    writer = await _stdout_writer(server, stdout)
    server.protocol.set_writer(writer)
    try:
        return await _session(server, FrameReader(await _stdin_stream(stdin)))
    finally:
        if isinstance(writer, _PipeWriter):
            await writer.flush(FLUSH_SECONDS)


async def _session(server: Any, reader: FrameReader) -> int:
    """Read until the session ends, then close the server (bounded); the exit code."""
    loop = asyncio.get_running_loop()
    server._stop_event = threading.Event()
    exit_code = server.protocol.lifecycle.exit_code()
    handled: list[int] = []
    for signum in (int(signal.SIGTERM), int(signal.SIGHUP), int(signal.SIGINT)):
        try:
            loop.add_signal_handler(signum, _on_signal, server, signum)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass
    reading = asyncio.create_task(_read_loop(server, reader), name="agentls-read")
    try:
        await asyncio.wait({reading, exit_code}, return_when=asyncio.FIRST_COMPLETED)
        code: int
        if exit_code.done():
            code = exit_code.result()
            reading.cancel()
        else:
            code = reading.result()
        await _close(server)
        return code
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


MAX_UNSENT = 128 * 1024 * 1024
"""Bytes written but not yet read by the client beyond which the session is given up."""

FLUSH_SECONDS = 1.0
"""How long the last replies may take to reach a client that reads slowly, at exit."""

CLOSE_SECONDS = 2.0
"""How long the server may take to cancel its runs and close its stores once the session ends."""


async def _close(server: Any) -> None:
    aclose = getattr(server, "aclose", None)
    if aclose is None:
        return
    task = asyncio.ensure_future(aclose())
    done, _ = await asyncio.wait({task}, timeout=CLOSE_SECONDS)
    if not done:
        logger.warning("closing the session took longer than %.1f s; exiting anyway", CLOSE_SECONDS)
    elif not task.cancelled() and task.exception() is not None:
        logger.error("closing the session failed", exc_info=task.exception())


def run_stdio(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """Blocking entry point for stdio: the event loop, the transport, and the exit code."""
    return _run(serve_stdio(server, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer))


def run_tcp(server: Any, host: str, port: int) -> int:
    """Blocking entry point for TCP (one session)."""
    return _run(serve_tcp(server, host, port))


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on a new loop and return its exit code.

    Unlike ``asyncio.run`` this never waits without bound at the end: leftover tasks get
    ``CLOSE_SECONDS`` to finish their cancellation, and worker threads are not joined (a thread
    stuck in a read must not keep an orphaned server alive; the caller ends the process).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    threshold = os.environ.get("AGENTLS_SLOW_CALLBACK_SECONDS")
    if threshold:
        # With PYTHONASYNCIODEBUG=1, callbacks longer than this are logged ("Executing ...
        # took"): the hardening tests' guard against blocking the loop.
        try:
            loop.slow_callback_duration = float(threshold)
        except ValueError:
            logger.warning("ignoring AGENTLS_SLOW_CALLBACK_SECONDS=%r: not a number", threshold)
    try:
        return loop.run_until_complete(main)
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            _cancel_leftovers(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_SECONDS))
        if pending:
            logger.warning("%d task(s) did not finish cancelling; exiting anyway", len(pending))
    loop.run_until_complete(loop.shutdown_asyncgens())
