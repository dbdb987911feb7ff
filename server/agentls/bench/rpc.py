"""A minimal LSP client over a real ``agentls serve`` process: the bench's view of the server.

The bench measures the server as an editor sees it, so it speaks JSON-RPC over the child's
stdin/stdout itself (``Content-Length`` framing, orjson) rather than through pygls: a client that
costs as little as possible keeps the figures about the server. Requests the server sends (none
with the empty capabilities most scenarios use; ``window/workDoneProgress/create`` when a
scenario says the client supports work-done progress) are answered with ``null``;
notifications are counted and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

_HEADER_END = b"\r\n\r\n"


class RpcError(Exception):
    """The server answered a request with an error."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        """Keep the JSON-RPC error object."""
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = dict(error)


class ServerProcess:
    """One ``agentls serve`` child and the client side of its stdio stream."""

    def __init__(self, proc: asyncio.subprocess.Process, started: float) -> None:
        """Wrap a started child; use ``spawn``."""
        self._proc = proc
        self.started = started
        """``perf_counter`` just before the child was created."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications: dict[str, int] = {}
        """How many notifications of each method arrived."""
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def spawn(
        cls,
        env: Mapping[str, str],
        cwd: Path | None = None,
        argv: Sequence[str] = ("-m", "agentls", "serve"),
    ) -> ServerProcess:
        """Start ``python -m agentls serve`` (or ``python *argv``) with the given environment.

        stderr is discarded.
        """
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            limit=1 << 26,
        )
        return cls(proc, started)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    async def _read_loop(self) -> None:
        """Read frames until the stream ends; resolve answers, count notifications."""
        out = self._proc.stdout
        assert out is not None
        try:
            while True:
                header = await out.readuntil(_HEADER_END)
                length = 0
                for line in header.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                message = orjson.loads(await out.readexactly(length))
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the server closed its stream"))
            self._pending.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Route one message from the server."""
        if "method" in message:
            if "id" in message:  # a request to the client: answer it, plainly
                self._write({"jsonrpc": "2.0", "id": message["id"], "result": None})
            else:
                method = str(message["method"])
                self.notifications[method] = self.notifications.get(method, 0) + 1
            return
        fut = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
        if fut is None or fut.done():
            return
        if "error" in message:
            fut.set_exception(RpcError(message["error"]))
        else:
            fut.set_result(message.get("result"))

    def _write(self, message: Mapping[str, Any]) -> None:
        """Frame and send one message (buffered; the transport flushes it)."""
        body = orjson.dumps(message)
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def send(self, method: str, params: Any = None) -> asyncio.Future[Any]:
        """Send a request; the future resolves with its result."""
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        self._write({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return fut

    async def request(self, method: str, params: Any = None, timeout: float = 60.0) -> Any:  # noqa: ASYNC109
        """Send a request and wait for its result.

        Raises:
            RpcError: the server answered with an error.
            TimeoutError: no answer in ``timeout`` seconds.
        """
        return await asyncio.wait_for(self.send(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification."""
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def command(self, name: str, argument: Any = None, timeout: float = 60.0) -> Any:  # noqa: ASYNC109
        """``workspace/executeCommand`` with one argument object (or none)."""
        params = {"command": name, "arguments": [] if argument is None else [argument]}
        return await self.request("workspace/executeCommand", params, timeout)

    async def initialize(
        self,
        folder: Path | None,
        options: Mapping[str, Any] | None = None,
        *,
        more_folders: Sequence[Path] = (),
        capabilities: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``initialize`` then ``initialized``; the client's capabilities are empty unless given."""
        folders = [f for f in (folder, *more_folders) if f is not None]
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "capabilities": dict(capabilities or {}),
            "rootUri": folder.as_uri() if folder else None,
            "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders] or None,
            "initializationOptions": dict(options or {}),
        }
        result = await self.request("initialize", params)
        self.notify("initialized", {})
        return dict(result)

    async def wait_indexed(self, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll ``agentls.status`` until the workspace index is ready."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.command("agentls.status")
            if status["index"]["state"] == "ready":
                return dict(status)
            if time.monotonic() > deadline:
                raise TimeoutError("the workspace index was not ready in time")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """``shutdown`` and ``exit``; kill the child if it does not end promptly."""
        with contextlib.suppress(Exception):
            await self.request("shutdown", None, timeout=5.0)
            self.notify("exit")
        if self._proc.stdin is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 5.0)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
