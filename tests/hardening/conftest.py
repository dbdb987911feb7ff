"""Fixtures for the hardening catalogue: a workspace full of hostile agents and raw servers.

Every server a test starts is killed at teardown, and the test fails if any process started by
one of its runs (marked with ``HARDENING_MARK`` in its environment) is still alive afterwards.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.agent_commands import SCRIPT as FAKES
from tests.hardening.rawclient import RawServer, wait_gone

HOSTILE = Path(__file__).with_name("agents.py")

CANARY = "sk-CANARYhardening0000secret42"
"""An API key that must never appear in any output channel."""

BACKENDS: dict[str, tuple[str, ...]] = {
    "echo": (str(FAKES), "echo"),
    "chunks": (str(FAKES), "chunks", "5", "0.01"),
    "slow": (str(HOSTILE), "slow-chunks", "600", "0.05"),
    "flood": (str(FAKES), "flood"),
    "signal": (str(FAKES), "signal"),
    "hang": (str(FAKES), "hang"),
    "fail": (str(FAKES), "fail", "3"),
    "orphans": (str(FAKES), "orphan-writer", "{root}/orphan.pid"),
    "family": (str(FAKES), "family", "{root}/family.pid"),
    "stubborn": (str(FAKES), "ignore-term", "{root}/stubborn.pid"),
    "attack": (str(HOSTILE), "stdout-attack"),
    "leak": (str(HOSTILE), "leak-fail", "OPENAI_API_KEY"),
    "env": (str(HOSTILE), "echo-env"),
}
"""Backend name -> script and arguments (run with this interpreter)."""

AGENT_TIMEOUTS = {"hang": 2, "flood": 30}

EXTRA_ENV = {"leak": ("OPENAI_API_KEY",)}
"""Variables a backend's configuration passes on besides the mark (the leak agent gets the key,
so its stderr really carries it and the failure message must scrub it)."""


def _toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join('"' + i.replace("\\", "\\\\") + '"' for i in items) + "]"


def make_workspace(root: Path) -> Path:
    """Agents named after their backends, each child marked so leftovers can be found."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ['default_backend = "echo"']
    for name, argv in BACKENDS.items():
        full = (sys.executable, *(a.replace("{root}", str(root)) for a in argv))
        lines += [
            f"[backends.{name}]",
            'kind = "command"',
            f"argv = {_toml_list(full)}",
            f"env = {_toml_list(('HARDENING_MARK', *EXTRA_ENV.get(name, ())))}",
        ]
    (root / "agentls.toml").write_text("\n".join(lines) + "\n")
    agents = root / ".agents"
    agents.mkdir(exist_ok=True)
    for name in BACKENDS:
        timeout = AGENT_TIMEOUTS.get(name, 60)
        (agents / f"{name}.md").write_text(
            textwrap.dedent(f"""\
                ---
                backend: {name}
                timeout: {timeout}
                ---
                Agent {name}. Task: {{{{task}}}}
            """)
        )
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "app.py").write_text("print('hello')\n")
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def mark() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def start_server(tmp_path: Path, mark: str) -> Iterator[Callable[..., RawServer]]:
    """Start raw servers; all are killed at teardown and no marked child may survive."""
    servers: list[RawServer] = []

    def start(*, env: dict[str, str] | None = None, **kw: Any) -> RawServer:
        server = RawServer(
            tmp_path / "srv",
            env={"HARDENING_MARK": mark, "OPENAI_API_KEY": CANARY, **(env or {})},
            **kw,
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
    survivors = wait_gone(mark, timeout=5.0)
    for proc in survivors:
        proc.kill()
    assert not survivors, f"processes outlived the server: {survivors}"
