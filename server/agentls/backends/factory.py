"""The backend factory: owner of the live backend instances, one per configured backend.

HTTP backends hold connection pools worth reusing across runs, so a backend is built once per
configuration value and handed out again while that configuration is unchanged. When the
configuration of a name changes (the user edited a setting), the new value gets a new instance and
the old one is closed in the background. The HTTP backend modules are imported only when a
configuration needs them, which keeps ``initialize`` fast and lets the server run with only the
``command`` backend when those modules are absent.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import cast

from agentls.backends.base import Backend, BackendError
from agentls.backends.command import CommandBackend
from agentls.config import BackendConfig

logger = logging.getLogger(__name__)

_HTTP_BACKENDS: dict[str, tuple[str, str]] = {
    "openai": ("agentls.backends.openai", "OpenAIBackend"),
    "anthropic": ("agentls.backends.anthropic", "AnthropicBackend"),
}
"""Backend kind -> (module, class) imported on first use; each class takes ``(config)``."""


class BackendFactory:
    """Builds and caches backends; closes the ones it replaces and, at the end, all of them."""

    def __init__(self) -> None:
        """Start with no backend built."""
        self._live: dict[str, tuple[BackendConfig, Backend]] = {}
        """Backend name -> (the configuration it was built from, the instance)."""
        self._closing: set[asyncio.Task[None]] = set()
        """Background closes of replaced instances (strong references until they finish)."""
        self._retired: list[Backend] = []
        """Replaced instances that could not be closed yet (no running loop)."""

    def get(self, config: BackendConfig) -> Backend:
        """The backend for ``config``: the cached one while the configuration is unchanged.

        Raises:
            BackendError: The kind is unknown, its module is not available, or the configuration
                is unusable (the message says which).
        """
        current = self._live.get(config.name)
        if current is not None and current[0] == config:
            return current[1]
        backend = self._create(config)
        self._live[config.name] = (config, backend)
        if current is not None:
            self._retire(current[1])
        return backend

    async def aclose(self) -> None:
        """Close every instance, current and replaced; the factory can be used again after."""
        instances = [b for _, b in self._live.values()] + self._retired
        self._live.clear()
        self._retired.clear()
        pending = list(self._closing)
        for backend in instances:
            await self._close_quietly(backend)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    def _create(config: BackendConfig) -> Backend:
        if config.kind == "command":
            return CommandBackend(config)
        target = _HTTP_BACKENDS.get(config.kind)
        if target is None:
            raise BackendError(f"unknown backend kind {config.kind!r} for backend {config.name!r}")
        module_name, class_name = target
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, class_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                logger.exception("backend module %s failed to import", module_name)
            raise BackendError(f"backend kind {config.kind!r} is not available") from None
        except (ImportError, AttributeError):
            logger.exception("backend module %s is unusable", module_name)
            raise BackendError(f"backend kind {config.kind!r} is not available") from None
        return cast(Backend, cls(config))

    def _retire(self, backend: Backend) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._retired.append(backend)
            return
        task = loop.create_task(self._close_quietly(backend), name=f"close-backend-{backend.name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_quietly(backend: Backend) -> None:
        try:
            await backend.aclose()
        except Exception:  # closing is best effort; a failure must not stop the others
            logger.exception("closing backend %s failed", backend.name)
