"""End-to-end fixtures: a real `agentls serve` process over stdio, driven by pytest-lsp's client.

Each test gets a fresh workspace in tmp_path, an isolated user-config folder and data folder, and a
client whose capabilities are those of VS Code or of Neovim (every test runs against both).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig

from tests.e2e.harness import CLIENTS, Recorded, Session, SessionFactory, make_workspace


@pytest.fixture(params=CLIENTS)
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def open_session(tmp_path: Path, client_name: str) -> SessionFactory:
    """Start a server on a workspace; usable several times in one test (restarts)."""

    @contextlib.asynccontextmanager
    async def start(
        root: Path,
        *,
        trusted: bool = True,
        init_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> AsyncIterator[Session]:
        config_home = tmp_path / "config-home"
        config_home.mkdir(exist_ok=True)
        server_env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(config_home),
            "AGENTLS_DATA_DIR": str(tmp_path / "data"),
            **(env or {}),
        }
        config = ClientServerConfig(
            server_command=[sys.executable, "-m", "agentls", "serve"], server_env=server_env
        )
        client = await config.start()
        recorded = Recorded()
        client.feature("agentls/runStarted")(lambda ls, p: recorded.started.append(p._asdict()))
        client.feature("agentls/output")(lambda ls, p: recorded.output.append(p._asdict()))
        client.feature("agentls/runFinished")(lambda ls, p: recorded.finished.append(p._asdict()))
        client.feature("agentls/toolCall")(lambda ls, p: recorded.tool_calls.append(p._asdict()))
        options = {"trusted": trusted, **(init_options or {})}
        await client.initialize_session(
            types.InitializeParams(
                capabilities=pytest_lsp.client_capabilities(client_name),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options=options,
            )
        )
        session = Session(client, root, recorded)
        try:
            yield session
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_session(), 10)
            await client.stop()

    return start


@pytest.fixture
async def session(open_session: SessionFactory, workspace: Path) -> AsyncIterator[Session]:
    async with open_session(workspace) as s:
        yield s
