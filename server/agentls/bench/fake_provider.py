"""A streaming model provider on 127.0.0.1 for the bench: the owner of the fake answers.

It speaks the part of OpenAI's Chat Completions API that the ``openai`` backend uses
(``POST .../chat/completions`` with ``stream: true``): a chunked ``text/event-stream`` of
``chunks`` deltas spaced ``interval`` seconds apart, a usage chunk, then ``data: [DONE]``, on
keep-alive HTTP/1.1 connections. It runs its own event loop in a daemon thread so that the server
under test (a child process) talks to it over real sockets while the bench's loop measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import orjson


class FakeProvider:
    """A local OpenAI-compatible endpoint that streams slowly and counts what it served."""

    def __init__(self, *, chunks: int = 20, interval: float = 0.02) -> None:
        """Not listening yet; use ``start``.

        Args:
            chunks: text deltas per answer.
            interval: seconds between deltas (an answer lasts about ``chunks * interval``).
        """
        self._chunks = chunks
        self._interval = interval
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0
        self.completed = 0
        """Answers streamed to the end (written from the provider's thread, read after)."""
        self.active_peak = 0
        """The most answers streaming at the same time."""
        self._active = 0

    @property
    def base_url(self) -> str:
        """What a backend's ``base_url`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Listen on an ephemeral port."""
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512), self._loop
        )
        self._server = fut.result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    def reset_peak(self) -> None:
        """Start counting ``active_peak`` afresh (between phases, with no answer streaming)."""
        self.active_peak = self._active

    def stop(self) -> None:
        """Stop listening, end the connections still being served, and end the thread."""
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        """Close the listener and cancel every connection's task (a client cancelled mid-answer
        leaves one waiting), so none is destroyed pending when the loop stops."""
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the client closes it."""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                await self._answer(lines[0], writer)
        writer.close()

    async def _answer(self, request_line: str, writer: asyncio.StreamWriter) -> None:
        """One streamed answer (or a 404 for anything but chat completions)."""
        if "/chat/completions" not in request_line:
            body = b'{"error": {"message": "not found"}}'
            writer.write(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return
        self._active += 1
        self.active_peak = max(self.active_peak, self._active)
        try:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for i in range(self._chunks):
                delta = {"choices": [{"index": 0, "delta": {"content": f"token{i} "}}]}
                self._event(writer, delta)
                await writer.drain()
                await asyncio.sleep(self._interval)
            self._event(writer, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._event(
                writer,
                {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": self._chunks}},
            )
            self._chunk(writer, b"data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.completed += 1
        finally:
            self._active -= 1

    def _event(self, writer: asyncio.StreamWriter, payload: object) -> None:
        """One SSE ``data:`` event in one HTTP chunk."""
        self._chunk(writer, b"data: " + orjson.dumps(payload) + b"\n\n")

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        """One HTTP/1.1 chunk."""
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
