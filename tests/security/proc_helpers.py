"""Helpers for the process, launch and configuration security tests (branch sec-proc).

``Server`` drives a real ``agentls serve`` process over stdio (or a TCP socket) with raw frames,
with the argv, working directory and environment the test chooses, which is the point of these
tests: how the server is *started* is part of the attack. Each server gets its own user-config
and data folders; ``user_config`` writes the user's own file (the trusted layer).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from tests.hardening.rawclient import Frames, frame

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "server" / "agentls"
"""The agentls package of this checkout (what a vendored copy in a repository would look like)."""

AGENTS = Path(__file__).with_name("proc_agents.py")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def toml_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def hostile_package(root: Path, name: str, marker: Path) -> None:
    """A package ``name`` in ``root`` whose import or ``-m`` run writes ``marker``."""
    code = f"open({str(marker)!r}, 'a').write('ran from the workspace\\n')\n"
    write(root, f"{name}/__init__.py", code)
    write(root, f"{name}/__main__.py", code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One real server process, driven with raw LSP frames; messages kept in arrival order."""

    def __init__(
        self,
        home: Path,
        *,
        argv: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        base_env: dict[str, str] | None = None,
        tcp_port: int | None = None,
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.config_home = home / "config-home"
        self.config_home.mkdir(exist_ok=True)
        self.data_dir = home / "data"
        full_env = {
            **(base_env if base_env is not None else os.environ),
            "XDG_CONFIG_HOME": str(self.config_home),
            "AGENTLS_DATA_DIR": str(self.data_dir),
            **(env or {}),
        }
        self.stderr_path = home / f"stderr-{time.monotonic_ns()}.log"
        self._stderr = self.stderr_path.open("wb")
        command = argv or [sys.executable, "-m", "agentls", "serve"]
        if tcp_port is not None:
            command = [*command, "--tcp", f"127.0.0.1:{tcp_port}"]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if tcp_port is None else subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=cwd,
            env=full_env,
        )
        self.messages: list[dict[str, Any]] = []
        self.config: Any = None
        """What the client answers to ``workspace/configuration``."""
        self._frames = Frames()
        self._cond = threading.Condition()
        self._eof = False
        self._next_id = 0
        self._sock: socket.socket | None = None
        if tcp_port is not None:
            self._sock = self._connect(tcp_port)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _connect(self, port: int) -> socket.socket:
        deadline = time.monotonic() + 20
        while True:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"never listened: {self.stderr()[-2000:]}") from None
                time.sleep(0.05)

    def _recv(self) -> bytes:
        if self._sock is not None:
            self._sock.settimeout(None)
            try:
                return self._sock.recv(65536)
            except OSError:
                return b""
        assert self.proc.stdout is not None
        try:
            return os.read(self.proc.stdout.fileno(), 65536)
        except OSError:
            return b""

    def _read(self) -> None:
        while True:
            data = self._recv()
            if not data:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            for msg in self._frames.feed(data):
                if "method" in msg and "id" in msg:  # a server request: answer as an editor would
                    result = None
                    if msg["method"] == "workspace/configuration":
                        result = [self.config for _ in msg.get("params", {}).get("items", [])]
                    self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
                with self._cond:
                    self.messages.append(msg)
                    self._cond.notify_all()

    def send(self, message: Any) -> None:
        data = frame(orjson.dumps(message))
        with contextlib.suppress(OSError, ValueError):
            if self._sock is not None:
                self._sock.sendall(data)
            else:
                assert self.proc.stdin is not None
                self.proc.stdin.write(data)
                self.proc.stdin.flush()

    def request(self, method: str, params: Any = None) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"no matching message within {timeout} s (eof={self._eof}); "
                        f"last: {self.messages[-3:]!r}; stderr: {self.stderr()[-2000:]}"
                    )
                self._cond.wait(min(left, 0.05))

    def response(self, msg_id: int, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def call(self, command: str, args: Any = None, timeout: float = 60.0) -> Any:
        rid = self.request(
            "workspace/executeCommand", {"command": command, "arguments": [args or {}]}
        )
        resp = self.response(rid, timeout)
        assert "error" not in resp, resp
        return resp["result"]

    def initialize(
        self, root: Path, *, options: dict[str, Any] | None = None, ready: bool = True
    ) -> dict[str, Any]:
        """``initialize`` (+ ``initialized`` and a first ``agentls.status`` when ``ready``)."""
        rid = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {
                    "window": {"workDoneProgress": True},
                    "workspace": {"configuration": True},
                },
                "initializationOptions": options or {},
            },
        )
        resp = self.response(rid)
        if ready and "error" not in resp:
            self.notify("initialized", {})
            self.call("agentls.status")
        return resp

    def user_config(self, text: str) -> None:
        write(self.config_home, "agentls/config.toml", text)

    def shutdown_and_exit(self) -> int:
        self.response(self.request("shutdown"))
        self.notify("exit")
        return self.wait_exit()

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._sock is not None:
            self._sock.close()
        self._reader.join(10)
        self._stderr.close()


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie runs nothing, but it is not reaped either)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def exists(pid: int) -> bool:
    """Whether ``pid`` exists at all, zombies included."""
    return psutil.pid_exists(pid)


def wait_until(predicate: Any, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (a hang guard, not a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def read_pids(path: Path, timeout: float = 30.0) -> list[int]:
    assert wait_until(lambda: path.is_file() and path.read_text().endswith("\n"), timeout), path
    return [int(p) for p in path.read_text().split()]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def extension_spawn(neutral_dir: Path, interpreter: str, setting: list[str] | None = None) -> Any:
    """What the VS Code extension passes to ``child_process.spawn``, computed by its own code.

    ``src/settings.ts`` (``serverCommand``) and ``src/launch.ts`` (``spawnParameters``) are
    bundled with the extension's esbuild and run under node with this process's environment.
    """
    from tests.vscode.vscode_toolchain import (
        EXTENSION_DIR,
        ToolchainUnavailable,
        ensure_extension_packages,
        skip_loudly,
    )

    node = shutil.which("node")
    if node is None:
        skip_loudly("node is not on PATH")
    try:
        modules = ensure_extension_packages()
    except ToolchainUnavailable as e:
        skip_loudly(str(e))
    out = neutral_dir.parent / "launch-bundle.js"
    entry = neutral_dir.parent / "launch-entry.ts"
    entry.write_text(
        f"export {{ spawnParameters }} from {json.dumps(str(EXTENSION_DIR / 'src' / 'launch'))};\n"
        f"export {{ serverCommand }} from {json.dumps(str(EXTENSION_DIR / 'src' / 'settings'))};\n"
    )
    subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),
            str(entry),
            "--bundle",
            "--platform=node",
            "--format=cjs",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        check=True,
        cwd=EXTENSION_DIR,
        timeout=120,
    )
    script = (
        f"const l = require({json.dumps(str(out))});"
        f"const cmd = l.serverCommand({json.dumps(setting or [])}, "
        f"{json.dumps(interpreter)}, process.platform);"
        f"process.stdout.write(JSON.stringify(l.spawnParameters(cmd, "
        f"{json.dumps(str(neutral_dir))}, process.env)));"
    )
    proc = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(proc.stdout)
