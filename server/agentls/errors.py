"""Errors that services raise on purpose, each with a message safe to show a user.

The LSP layer maps them to JSON-RPC errors (``code``); anything else that escapes a handler is a bug
and is answered with a generic message, never with its text (which may hold a path or a secret).
"""

from __future__ import annotations

INVALID_PARAMS = -32602
"""JSON-RPC: the request's parameters are wrong."""

REQUEST_FAILED = -32803
"""LSP: a well-formed request that could not be carried out."""


class AgentlsError(Exception):
    """A failure with a user-facing message. ``str(error)`` must never contain a secret."""

    code: int = REQUEST_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArguments(AgentlsError):
    """A command argument has the wrong type or value; ``field`` names it."""

    code = INVALID_PARAMS

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class UnknownAgent(AgentlsError):
    """No agent of that name; the message lists the agents there are."""

    code = INVALID_PARAMS

    def __init__(self, name: str, known: list[str]) -> None:
        names = ", ".join(sorted(known)) if known else "none are defined"
        super().__init__(f"unknown agent {name!r}; known agents: {names}")
        self.name = name


class InvalidAgent(AgentlsError):
    """The agent exists but its definition has problems, so it cannot run."""

    code = INVALID_PARAMS


class OutsideWorkspace(AgentlsError):
    """A path that is not inside any workspace folder (after resolving symlinks)."""

    code = INVALID_PARAMS

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is outside the workspace folders; refused")
        self.path = path


class PromptTooLarge(AgentlsError):
    """The prompt, with its variables filled in, would exceed ``limits.max_prompt_bytes``.

    Raised before the prompt is built (so before any run exists): the request fails with
    ``-32602``, as for any argument that cannot be served, and nothing is recorded in history.
    """

    code = INVALID_PARAMS

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the prompt would be {size:,} bytes once its variables ({{{{task}}}}, "
            f"{{{{selection}}}}, ...) are filled in, over the limit of {limit:,} bytes "
            "(limits.max_prompt_bytes); shorten the task or the selection, or use fewer "
            "variables in the agent's body"
        )
        self.size = size
        self.limit = limit


class UnknownRun(AgentlsError):
    """No run with that id in memory or in history."""

    code = INVALID_PARAMS

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")


class Overloaded(AgentlsError):
    """The run queue is full; the client may retry later."""
