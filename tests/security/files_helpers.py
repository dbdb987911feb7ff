"""Servers and workspaces for the file-reading attacks (definitions, special files, bounds).

Each test builds a hostile workspace, starts the real ``agentls serve`` process over stdio
(``tests.hardening.rawclient.RawServer``) and drives it with raw frames. Backends and limits live
in the user's own configuration file (the trusted layer), so nothing the workspace says about
them matters here. Every server is killed at teardown.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.agent_commands import SCRIPT as FAKES
from tests.hardening.rawclient import RawServer

Start = Callable[..., RawServer]

CANARY = "AGENTLS-CANARY-7f3a9c1e-this-must-never-be-read"
"""Text planted in files the server must not read; it must never come back."""


def user_config(home: Path, *, limits: dict[str, int] | None = None) -> None:
    """Write the user's configuration: an ``echo`` command backend, and optional limits."""
    lines = [
        'default_backend = "echo"',
        "[backends.echo]",
        'kind = "command"',
        f'argv = ["{sys.executable}", "{FAKES}", "echo"]',
    ]
    if limits:
        lines.append("[limits]")
        lines += [f"{key} = {value}" for key, value in limits.items()]
    folder = home / "agentls"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text("\n".join(lines) + "\n")


def agent(root: Path, name: str, body: str = "Review: {{task}}", front: str = "") -> Path:
    """Write ``.agents/<name>.md``."""
    path = root / ".agents" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\nname: {name}\n{front}---\n{textwrap.dedent(body)}\n")
    return path


def agent_names(server: RawServer) -> set[str]:
    """The names of every agent the server knows, valid or not."""
    return {a["name"] for a in server.call("agentls.agents.list")["agents"]}


def peak_rss_bytes(server: RawServer) -> int:
    """The server's peak resident memory so far (``VmHWM``)."""
    status = Path(f"/proc/{server.pid}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def changed(server: RawServer, *paths: Path) -> None:
    """Tell the server files were created (as an editor's file watcher would)."""
    server.notify(
        "workspace/didChangeWatchedFiles",
        {"changes": [{"uri": p.as_uri(), "type": 1} for p in paths]},
    )


@pytest.fixture
def start_files_server(tmp_path: Path) -> Iterator[Start]:
    """Start raw servers with the user configuration in place; all are killed at teardown."""
    servers: list[RawServer] = []

    def start(*, limits: dict[str, int] | None = None, **kw: Any) -> RawServer:
        home = tmp_path / "srv" / "config-home"
        user_config(home, limits=limits)
        server = RawServer(tmp_path / "srv", debug=False, **kw)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
