"""Fixtures shared by the unit tests that drive an ``AgentService`` directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agentls.config import Settings
from agentls.service import AgentService

Start = Callable[[Settings, Path], Awaitable[AgentService]]
"""Starts a service on one folder (without a watcher)."""


@pytest.fixture
async def services() -> AsyncIterator[Start]:
    """Start services on demand; every one is shut down at the end of the test."""
    started: list[AgentService] = []

    async def start(settings: Settings, folder: Path) -> AgentService:
        service = AgentService(settings, [folder], watch=False)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.shutdown()
