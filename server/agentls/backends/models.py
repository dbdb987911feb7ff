"""Which model a run asks its backend for: the rule that a foreign model name is never sent as is.

Agent files are written for other tools: ``model: sonnet`` (Claude Code's alias), ``model:
'Claude Opus 4.5 (copilot)'`` (a Copilot display name), ``claude-sonnet-4-20250514`` in a
repository whose user runs a local OpenAI-compatible server. Sending those names as written fails
the run (``HTTP 404 ... model 'haiku' does not exist``), and editing the file is not an answer: the
other tool reads it too. So the configuration decides:

1. ``[models.BACKEND]`` then ``[models]`` map the name (``source = "alias"``); an ``anthropic``
   backend also knows ``ANTHROPIC_ALIASES`` for Claude Code's aliases.
2. A name the backend lists in its ``models`` is sent as written (``"agent"``); a display name
   that is a listed model spelled differently (``GPT-4.1 (copilot)`` for ``gpt-4.1``) is sent in
   the listed spelling (``"alias"``).
3. A foreign name (``foreign_reason``; for a ``command`` backend only a name missing from its
   ``models`` list) is replaced by the backend's own model (``"backend"``), and
   the run result, ``agents.list`` and a hint on the file say so.
4. Any other name is sent as written (``"agent"``); no ``model`` at all uses the backend's.

Nothing here talks to a backend; ``agentls doctor`` checks the effective model against the list the
backend serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agentls.config import BackendConfig, ModelAliases

ModelSource = Literal["agent", "alias", "backend"]

CLAUDE_CODE_ALIASES: frozenset[str] = frozenset(
    {"sonnet", "opus", "haiku", "opusplan", "default", "sonnet[1m]", "opus[1m]"}
)
"""Claude Code's model aliases (``inherit`` is read as no model at all by the parser)."""

ANTHROPIC_ALIASES: dict[str, str] = {
    "sonnet": "claude-sonnet-4-5",
    "opus": "claude-opus-4-1",
    "haiku": "claude-haiku-4-5",
    "opusplan": "claude-opus-4-1",
    "sonnet[1m]": "claude-sonnet-4-5",
    "opus[1m]": "claude-opus-4-1",
}
"""Claude Code's aliases on an ``anthropic`` backend, unless ``[models]`` says otherwise."""

_DISPLAY_NAME = re.compile(r"\s|\(|^(GPT|Claude|Gemini|Grok|Auto)\b")
"""Copilot's display names: ``GPT-4.1``, ``Claude Sonnet 4.5``, ``GPT-5 mini (copilot)``."""


@dataclass(frozen=True)
class ModelChoice:
    """The model a run asks for, where it came from, and why when the file's was not used."""

    model: str | None
    """None when neither the agent nor the backend names one (the backend then refuses)."""
    source: ModelSource
    requested: str | None
    """The ``model`` the agent file gives, as written (None when it gives none)."""
    note: str | None = None
    """Why ``requested`` was not sent as written; None when it was (or there was none)."""


def foreign_reason(name: str, backend: BackendConfig) -> str | None:
    """Why ``name`` is a name ``backend`` cannot be asked for, or None when it may be.

    A ``command`` backend is only told the model (``AGENTLS_MODEL``), and a CLI such as Claude
    Code's understands its own aliases, so there only a known ``models`` list rules a name out.
    """
    if backend.kind == "command":
        if backend.models and name not in backend.models:
            return f"{name!r} is not one of the models backend {backend.name!r} lists"
        return None
    lowered = name.lower()
    if lowered in CLAUDE_CODE_ALIASES:
        return f"{name!r} is a Claude Code alias"
    if _DISPLAY_NAME.search(name):
        return f"{name!r} is a GitHub Copilot model name"
    if backend.models and name not in backend.models:
        return f"{name!r} is not one of the models backend {backend.name!r} lists"
    if backend.kind == "openai" and lowered.startswith("claude-"):
        return f"{name!r} is an Anthropic model and backend {backend.name!r} is OpenAI-compatible"
    if backend.kind == "anthropic" and not lowered.startswith("claude"):
        return f"{name!r} is not a Claude model and backend {backend.name!r} is Anthropic's API"
    return None


def resolve_model(
    requested: str | None, backend: BackendConfig | None, aliases: ModelAliases
) -> ModelChoice:
    """The model one agent runs on with one backend (the module docstring has the rules)."""
    fallback = backend.model if backend is not None else None
    if requested is None:
        return ModelChoice(fallback, "backend", None)
    if backend is None:
        return ModelChoice(requested, "agent", requested)
    mapped = backend_aliases(backend, aliases).get(requested)
    if mapped is not None:
        return ModelChoice(mapped, "alias", requested)
    if requested in backend.models:
        return ModelChoice(requested, "agent", requested)
    listed = _listed_spelling(requested, backend.models)
    if listed is not None:
        return ModelChoice(listed, "alias", requested)
    reason = foreign_reason(requested, backend)
    if reason is None:
        return ModelChoice(requested, "agent", requested)
    using = (
        f"the model of backend {backend.name!r} ({fallback})"
        if fallback
        else f"backend {backend.name!r}, which sets no model"
    )
    note = (
        f"{reason}, so agentls runs this agent on {using}; to choose, map it in your agentls "
        f'configuration: [models] {_toml_key(requested)} = "MODEL"'
    )
    return ModelChoice(fallback, "backend", requested, note)


def _listed_spelling(name: str, models: tuple[str, ...]) -> str | None:
    """The listed model a display name spells differently (``GPT-4.1 (copilot)`` is ``gpt-4.1``)."""
    wanted = re.sub(r"\s*\(copilot\)\s*$", "", name, flags=re.IGNORECASE).strip()
    wanted = re.sub(r"\s+", "-", wanted).lower()
    return next((model for model in models if model.lower() == wanted), None)


def backend_aliases(backend: BackendConfig, aliases: ModelAliases) -> dict[str, str]:
    """Every alias that applies to one backend, the most specific winning."""
    table = dict(ANTHROPIC_ALIASES) if backend.kind == "anthropic" else {}
    table.update(aliases.common)
    table.update(aliases.per_backend.get(backend.name, {}))
    return table


def _toml_key(name: str) -> str:
    """A model name as a TOML key: bare when it can be, quoted otherwise."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
