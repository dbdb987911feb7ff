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
- The body is decoded with orjson and handed to pygls' ``structure_message``/``handle_message``.
  A body that is not JSON is answered with ``-32700`` (id null) and the session goes on.
- stdin is read through an asyncio pipe, with no thread hop; when stdin is not a pipe (a file, a
  terminal) a thread reads it instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
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
    """Decode one body and hand it to pygls; a body that is not JSON gets -32700."""
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
    protocol.handle_message(protocol.structure_message(data) if isinstance(data, dict) else data)


async def serve_stdio(server: Any, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Run the server over stdio until ``exit``, end of input, or a framing error.

    Returns the process exit code: pygls' ``exit`` handler raises ``SystemExit`` (0 after
    ``shutdown``, 1 without), end of input is 0, a framing error is 1.
    """
    from pygls.io_ import StdoutWriter

    server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout))
    reader = FrameReader(await _stdin_stream(stdin))
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
        except SystemExit as e:
            return int(e.code or 0)
        except Exception:  # one bad message must not end the session
            logger.exception("could not handle a message")


def run_stdio(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """Blocking entry point: the event loop, the transport, and the exit code."""
    try:
        return asyncio.run(
            serve_stdio(server, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)
        )
    except SystemExit as e:  # raised from a callback (pygls' exit handler) rather than dispatch
        return int(e.code or 0)
    except KeyboardInterrupt:
        return 130
