"""The one small interface every backend implements, and the values that cross it.

A backend turns a ``BackendRequest`` into an async stream of ``BackendEvent``s: text as it comes,
and usage figures when the provider reports them. It raises ``BackendError`` (a message safe to
show: shortened, no key, no traceback) for anything that ends the run as ``failed``. Cancellation is
``asyncio`` cancellation of the task iterating the stream: the implementation must release what it
holds (close the HTTP stream, kill the process group) in its ``finally``/``aclose`` path, promptly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from agentls.errors import AgentlsError


@dataclass(frozen=True)
class BackendRequest:
    """What one run sends. ``prompt`` is the exact text a single-input backend receives."""

    run_id: str
    system: str
    """The agent's body with variables filled in."""
    user: str
    """The task followed by the attached context."""
    model: str | None = None
    """The agent's model override, else None (the backend's own model applies)."""
    cwd: str | None = None
    """Working directory for local commands: the agent's workspace folder."""

    @property
    def prompt(self) -> str:
        """System and user parts as one text, for backends with a single input (commands)."""
        return render_prompt(self.system, self.user)


def render_prompt(system: str, user: str) -> str:
    """The single-text form of a prompt; a dry run shows exactly this."""
    return f"{system.rstrip()}\n\n{user}" if system.strip() else user


@dataclass(frozen=True)
class TextDelta:
    """A piece of output text, in order."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


BackendEvent = TextDelta | Usage


class BackendError(AgentlsError):
    """The backend could not produce (all of) an answer. The message is safe to show."""


class Backend(Protocol):
    """A configured backend, created once per configuration and reused across runs."""

    name: str

    def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        """Start the request and yield its events; raise ``BackendError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release shared resources (HTTP connection pools); idempotent."""
        ...
