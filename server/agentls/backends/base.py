"""The one small interface every backend implements, and the values that cross it.

A backend turns a ``BackendRequest`` into an async stream of ``BackendEvent``s: text as it comes,
usage figures when the provider reports them, each tool call the model asks for (complete, once its
arguments are all in) and how the turn stopped. That common stream is all the tool loop
(``execution.tool_loop``) sees; backends only translate the provider's wire format to and from it,
including the earlier turns of a conversation (``BackendRequest.transcript``).

It raises ``BackendError`` (a message safe to show: shortened, no key, no traceback) for anything
that ends the run as ``failed``. Cancellation is ``asyncio`` cancellation of the task iterating the
stream: the implementation must release what it holds (close the HTTP stream, kill the process
group) in its ``finally``/``aclose`` path, promptly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

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
    tools: tuple[ToolSpec, ...] = ()
    """The tools the model may call this turn (none: a plain answer)."""
    transcript: tuple[AssistantTurn | ToolResult, ...] = ()
    """The conversation after the first user message: the model's earlier turns and the results
    of the tools it called, in order."""

    @property
    def prompt(self) -> str:
        """System and user parts as one text, for backends with a single input (commands)."""
        return render_prompt(self.system, self.user)


def render_prompt(system: str, user: str) -> str:
    """The single-text form of a prompt; a dry run shows exactly this."""
    return f"{system.rstrip()}\n\n{user}" if system.strip() else user


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is told about it: a name, what it does, a JSON Schema of its input."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool. ``arguments`` is the JSON text as the model wrote it (it may be
    malformed: the loop answers that to the model)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class AssistantTurn:
    """One earlier answer of the model: its text and the tools it called."""

    text: str
    tool_calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolResult:
    """What a tool answered to one call (an error is answered too, for the model to recover)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Stop:
    """How the provider ended a turn: a finished answer, a request for tools, or a cut."""

    reason: Literal["end", "tool_calls", "length"]


@dataclass(frozen=True)
class TextDelta:
    """A piece of output text, in order."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


BackendEvent = TextDelta | Usage | ToolCall | Stop


class BackendError(AgentlsError):
    """The backend could not produce (all of) an answer. The message is safe to show."""


class ToolsUnsupported(BackendError):
    """The provider refused the request because the model cannot call tools.

    Many local models behind Ollama or llama.cpp answer so; the tool loop then runs single-shot.
    """


class Backend(Protocol):
    """A configured backend, created once per configuration and reused across runs."""

    name: str

    def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        """Start the request and yield its events; raise ``BackendError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release shared resources (HTTP connection pools); idempotent."""
        ...
