"""Context summaries: how many files and tokens each agent's context holds, for code lenses.

Building a context costs milliseconds; a code lens is asked for on every scroll, so lenses show a
cached summary. The cache is invalidated wholesale (a generation counter) whenever the workspace,
an editor buffer, an agent or the configuration changes; a stale summary is still shown until the
recomputed one replaces it, and the LSP layer then asks the editor to refresh its lenses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The size of one agent's context, as a preview without editor state builds it."""

    files: int
    """Files included whole or truncated."""
    tokens: int
    """Estimated tokens of the whole prompt."""


class ContextSummaries:
    """Owner of the cached summaries, keyed by agent name."""

    def __init__(self) -> None:
        self.generation = 0
        """Bumped by ``invalidate``; a summary computed under an older one is stale."""
        self._values: dict[str, tuple[int, Summary]] = {}

    def invalidate(self) -> None:
        """Something a context depends on changed: every summary is stale."""
        self.generation += 1

    def get(self, agent: str) -> tuple[Summary | None, bool]:
        """The last summary of an agent (None if never computed) and whether it is current."""
        entry = self._values.get(agent)
        if entry is None:
            return None, False
        return entry[1], entry[0] == self.generation

    def store(self, agent: str, generation: int, summary: Summary) -> bool:
        """Keep a summary computed under ``generation``; True when what is shown changes."""
        old = self._values.get(agent)
        if old is not None and old[0] > generation:
            return False  # a newer computation already landed
        self._values[agent] = (generation, summary)
        return old is None or old[1] != summary

    def agents(self) -> list[str]:
        """Agents with a summary (the ones an editor has shown lenses for)."""
        return list(self._values)

    def forget(self, keep: set[str]) -> None:
        """Drop summaries of agents that no longer exist."""
        for name in list(self._values):
            if name not in keep:
                del self._values[name]
