"""A raw-frame LSP client for hardening tests: real `agentls serve` process, bytes on its stdin.

Unlike pytest-lsp's client, this one can send anything (broken headers, junk, duplicate ids) and
reads the server's stdout *strictly*: every byte must belong to a well-formed frame, so a stray
line written to the stream (the pollution a strict editor client dies on) is recorded and fails
the test. It answers the server's own requests the way an editor would (configuration, progress
create, capability registration) and keeps every message in arrival order.

The server runs with asyncio debug mode (``PYTHONASYNCIODEBUG=1``): any callback that holds the
event loop longer than ``SLOW_CALLBACK_SECONDS`` logs "Executing ... took", and ``problems()``
reports it. The threshold detects a blocking call (a synchronous read of a FIFO, a sleep, a whole
tree walked in one step), not a slow machine: on a loaded 2-core machine an ordinary 20-50 ms step
can take several times as long, so it sits well above that. How long the loop really stalls is a
figure of ``agentls bench`` (the streaming scenario).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

SLOW_CALLBACK = "Executing <"
"""asyncio's debug-mode warning for a callback that blocked the loop (slow_callback_duration)."""

SLOW_CALLBACK_SECONDS = "1.0"
"""The debug-mode threshold given to the server (``AGENTLS_SLOW_CALLBACK_SECONDS``)."""


class Frames:
    """Strict parser of the server's output: complete frames, or a recorded violation."""

    def __init__(self) -> None:
        self.buffer = b""
        self.violations: list[bytes] = []

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the messages completed by them."""
        self.buffer += data
        out: list[dict[str, Any]] = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                head = self.buffer[:16]
                if head and not (
                    b"Content-Length: ".startswith(head) or head == b"Content-Length: "
                ):
                    self.violations.append(self.buffer[:200])
                    self.buffer = b""
                return out
            header = self.buffer[:end].decode("ascii", errors="replace")
            length = None
            for line in header.split("\r\n"):
                name, _, value = line.partition(":")
                if name == "Content-Length":
                    length = int(value.strip())
                elif name != "Content-Type":
                    self.violations.append(line.encode()[:200])
            if length is None:
                self.violations.append(self.buffer[:200])
                self.buffer = self.buffer[end + 4 :]
                continue
            start = end + 4
            if len(self.buffer) < start + length:
                return out
            body = self.buffer[start : start + length]
            self.buffer = self.buffer[start + length :]
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                self.violations.append(body[:200])
                continue
            out.append(value)


def frame(body: bytes) -> bytes:
    """One correctly framed message."""
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class RawServer:
    """One `agentls serve` process driven with raw frames."""

    def __init__(
        self,
        tmp: Path,
        *,
        env: dict[str, str] | None = None,
        debug: bool = True,
        args: tuple[str, ...] = (),
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.stderr_path = tmp / f"stderr-{time.monotonic_ns()}.log"
        config_home = tmp / "config-home"
        config_home.mkdir(exist_ok=True)
        full_env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(config_home),
            "AGENTLS_DATA_DIR": str(tmp / "data"),
            **(env or {}),
        }
        if debug:
            full_env["PYTHONASYNCIODEBUG"] = "1"
            full_env.setdefault("AGENTLS_SLOW_CALLBACK_SECONDS", SLOW_CALLBACK_SECONDS)
        else:
            full_env.pop("PYTHONASYNCIODEBUG", None)
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentls", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=full_env,
        )
        self.pid = self.proc.pid
        self.messages: list[dict[str, Any]] = []
        self.sent_ids: list[Any] = []
        self.frames = Frames()
        self.stdout_bytes = bytearray()
        self.config: Any = None
        """What the client answers to ``workspace/configuration`` (per item)."""
        self.hold: set[str] = set()
        """Server->client request methods left unanswered (the test answers them itself)."""
        self._cond = threading.Condition()
        self._next_id = 1000
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- I/O ------------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            self.stdout_bytes += data
            for msg in self.frames.feed(data):
                self._answer_server_request(msg)
                with self._cond:
                    self.messages.append(msg)
                    self._cond.notify_all()

    def _answer_server_request(self, msg: dict[str, Any]) -> None:
        if "method" not in msg or "id" not in msg:
            return
        method = msg["method"]
        if method in self.hold:
            return
        result: Any = None
        if method == "workspace/configuration":
            result = [self.config for _ in msg.get("params", {}).get("items", [])]
        self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the server's stdin (ignored once it is gone)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def send(self, message: Any) -> None:
        """Frame and send one JSON value."""
        self.send_raw(frame(orjson.dumps(message)))

    def request(
        self, method: str, params: Any = None, *, id: Any = None, omit: bool = False
    ) -> Any:
        """Send a request; returns its id. ``omit`` leaves out ``params`` entirely."""
        if id is None:
            self._next_id += 1
            id = self._next_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if not omit:
            msg["params"] = params
        self.sent_ids.append(id)
        self.send(msg)
        return id

    def notify(self, method: str, params: Any = None, *, omit: bool = False) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if not omit:
            msg["params"] = params
        self.send(msg)

    def command(self, name: str, *args: Any, id: Any = None) -> Any:
        """Send ``workspace/executeCommand``; returns the request id."""
        return self.request(
            "workspace/executeCommand", {"command": name, "arguments": list(args)}, id=id
        )

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, predicate: Any, timeout: float = 10.0, since: int = 0) -> dict[str, Any]:
        """The first message from index ``since`` matching ``predicate``, within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages[since:]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"no matching message within {timeout} s (eof={self._eof}); "
                        f"last: {self.messages[-3:]!r}; stderr: {self.stderr()[-2000:]}"
                    )
                self._cond.wait(min(left, 0.05))

    def response(self, msg_id: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The response to request ``msg_id``."""
        return self.wait_for(
            lambda m: m.get("id") == msg_id and "method" not in m and _same_type(m["id"], msg_id),
            timeout,
        )

    def result(self, msg_id: Any, timeout: float = 10.0) -> Any:
        """The result of request ``msg_id``; fails on an error response."""
        resp = self.response(msg_id, timeout)
        # The server's own log says why (a slow start, a refused run): keep its tail.
        assert "error" not in resp, (resp, self.stderr()[-3000:])
        return resp["result"]

    def call(self, name: str, *args: Any, timeout: float = 10.0) -> Any:
        """Run a command and return its result."""
        return self.result(self.command(name, *args), timeout)

    def forget_messages(self) -> None:
        """Drop the messages received so far (long soaks); answered-once checks end here."""
        with self._cond:
            self.messages.clear()
            self.sent_ids.clear()

    def responses_to(self, msg_id: Any) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m
                for m in self.messages
                if "method" not in m and m.get("id") == msg_id and _same_type(m["id"], msg_id)
            ]

    def notifications(self, method: str) -> list[Any]:
        with self._cond:
            return [m.get("params") for m in self.messages if m.get("method") == method]

    def initialize(
        self,
        root: Path | None,
        *,
        process_id: Any = "self",
        options: dict[str, Any] | None = None,
        capabilities: dict[str, Any] | None = None,
        wait_ready: bool = True,
    ) -> Any:
        """``initialize`` + ``initialized``; waits until the service answers ``agentls.status``."""
        params = {
            "processId": os.getpid() if process_id == "self" else process_id,
            "rootUri": root.as_uri() if root else None,
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}] if root else None,
            "capabilities": capabilities
            if capabilities is not None
            else {"window": {"workDoneProgress": True}, "workspace": {"configuration": True}},
            "initializationOptions": {"trusted": True, **(options or {})},
        }
        result = self.result(self.request("initialize", params), 20)
        self.notify("initialized", {})
        if wait_ready:
            self.call("agentls.status", timeout=40)
        return result

    def shutdown_and_exit(self, timeout: float = 10.0) -> int:
        """``shutdown`` then ``exit``; the exit code. ``timeout`` bounds each wait (a hang)."""
        rid = self.request("shutdown", omit=True)
        resp = self.response(rid, timeout)
        assert resp.get("result", "missing") is None, resp
        self.notify("exit", omit=True)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """The exit code; fails the test if the process is still running after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s") from None

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def kill(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        self._stderr.close()

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    # -- invariants -----------------------------------------------------------------------------

    def problems(
        self, *, canaries: tuple[str, ...] = (), allow_unanswered: bool = False
    ) -> list[str]:
        """Violations of the global invariants (docs/reliability.md, section 2), as messages."""
        found: list[str] = []
        if self.frames.violations:
            found.append(f"stdout pollution: {self.frames.violations[:3]!r}")
        if not allow_unanswered:
            for msg_id in dict.fromkeys(self.sent_ids):
                n = len(self.responses_to(msg_id))
                dupes = self.sent_ids.count(msg_id)
                if n != dupes:
                    found.append(f"request {msg_id!r} sent {dupes}x, answered {n}x")
        err = self.stderr()
        if SLOW_CALLBACK in err:
            line = next(ln for ln in err.splitlines() if SLOW_CALLBACK in ln)
            found.append(f"event loop blocked: {line[:300]}")
        out = bytes(self.stdout_bytes)
        for canary in canaries:
            if canary.encode() in out:
                found.append(f"canary {canary!r} on the LSP stream")
            if canary in err:
                found.append(f"canary {canary!r} on stderr")
        for msg in self.messages:
            err_obj = msg.get("error")
            if isinstance(err_obj, dict) and ("data" in err_obj or "Traceback" in str(err_obj)):
                found.append(f"error response with internals: {err_obj!r}"[:300])
        for params in self.notifications("window/showMessage"):
            text = str(params.get("message", ""))
            if "Error in server" in text or "Traceback" in text or "Error:" in text:
                found.append(f"raw exception text in a pop-up: {text[:200]}")
        return found


def _same_type(a: Any, b: Any) -> bool:
    """Ids 1 and "1" are different ids (and True is not 1)."""
    return type(a) is type(b)


def processes_with(marker: str, exclude: tuple[int, ...] = ()) -> list[psutil.Process]:
    """Live processes whose environment carries ``HARDENING_MARK=marker`` (agent children)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid in exclude:
            continue
        try:
            if proc.environ().get("HARDENING_MARK") == marker and proc.status() != "zombie":
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def wait_gone(
    marker: str, timeout: float = 5.0, exclude: tuple[int, ...] = ()
) -> list[psutil.Process]:
    """Wait until no process carries ``marker``; the survivors after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = processes_with(marker, exclude)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)
