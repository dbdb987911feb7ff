"""The limits one run gets: the agent's own front matter, held to the configuration's when the
workspace is not trusted.

An agent file may set ``max_files``, ``max_context_tokens``, ``timeout`` and ``max_turns``. In a
trusted workspace they replace the configured defaults, up or down. An untrusted workspace is
hostile input and may only narrow what the user configured (as its ``agentls.toml`` may: see
``config``), so there each value is the smaller of the agent's and the configuration's, and the
run's notes say which were held back. A ``run_timeout`` of 0 means no deadline, so any positive
agent ``timeout`` is narrower.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentls.agents.definition import AgentDefinition
from agentls.config import Settings


@dataclass(frozen=True)
class RunLimits:
    """What one run of an agent may use."""

    max_files: int
    max_context_tokens: int
    timeout: float
    """Seconds; 0 or less: no deadline."""
    max_turns: int
    notes: tuple[str, ...] = ()
    """Front-matter values an untrusted workspace was not allowed to raise, in words."""


def run_limits(agent: AgentDefinition, settings: Settings) -> RunLimits:
    """The agent's limits for a run under ``settings`` (see the module docstring)."""
    limits = settings.limits
    notes: list[str] = []

    def narrowed(key: str, own: float | None, configured: float, setting: str) -> float:
        if own is None:
            return configured
        if settings.trusted or own <= configured or (setting == "run_timeout" and configured <= 0):
            return own
        notes.append(
            f"the workspace is not trusted, so the agent's {key} ({own:g}) was held to "
            f"limits.{setting} ({configured:g})"
        )
        return configured

    max_files = narrowed("max_files", agent.max_files, limits.max_files, "max_files")
    tokens = narrowed(
        "max_context_tokens",
        agent.max_context_tokens,
        limits.max_context_tokens,
        "max_context_tokens",
    )
    timeout = narrowed("timeout", agent.timeout, limits.run_timeout, "run_timeout")
    turns = narrowed("max_turns", agent.max_turns, limits.max_turns, "max_turns")
    return RunLimits(
        max_files=int(max_files),
        max_context_tokens=int(tokens),
        timeout=timeout,
        max_turns=max(1, int(turns)),
        notes=tuple(notes),
    )
