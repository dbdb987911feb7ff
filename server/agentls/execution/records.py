"""The record of one run: what the engine produces, history stores, and the protocol returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]


@dataclass(frozen=True)
class RunRecord:
    """A finished run. Never holds an API key: errors are the backends' scrubbed messages, and
    the output went through the same secret detectors as the prompt's files."""

    id: str
    agent: str
    task: str
    status: RunStatus
    output: str
    started_at: float
    """Unix time (seconds) when the run was submitted."""
    duration_ms: float
    backend: str | None = None
    model: str | None = None
    error: str | None = None
    usage: dict[str, int | None] | None = None
    manifest: list[dict[str, Any]] = field(default_factory=list)
    workspace: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Every tool call, in order: ``call_id, tool, arguments, status, summary, duration_ms``."""
    edits: list[dict[str, Any]] = field(default_factory=list)
    """Edits the model proposed (``tools.edits.ProposedEdit.to_dict``), each with its ``state``."""
    turns: int = 0
    """Model calls made (1 for a run without tools)."""
    notes: list[str] = field(default_factory=list)
    """What the user should know about how the run went (a model without tools...)."""
    findings: list[dict[str, Any]] | None = None
    """For ``output: diagnostics`` agents: the findings this run reported (None otherwise, and
    for runs that did not finish, which leave the agent's previous findings in place)."""
    findings_dropped: int = 0
    """Findings refused: paths outside the workspace, secret files, over the per-run limit."""
    output_secrets: list[dict[str, Any]] = field(default_factory=list)
    """``{"line", "kind"}`` of each secret removed from ``output`` (``context/secrets.py``): the
    output is stored and returned with ``[REDACTED:kind]`` in its place."""

    parent: str | None = None
    """The recipe run this run is a step of (``execution.recipes``); None for a run of its own."""
    steps: list[dict[str, Any]] | None = None
    """A recipe's record only: ``{id, agent, run_id, status, item?}`` per step and fan-out item,
    in the recipe's order (None for an agent's run)."""

    def to_dict(self) -> dict[str, Any]:
        """The protocol form (also what history persists).

        Shallow on purpose: ``dataclasses.asdict`` deep-copies the manifest (a thousand dicts for
        a big context), which was half of what a run cost the server. Callers do not mutate it.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> dict[str, Any]:
        """The short form for listings: no output body, manifest, tool calls or edits (counts)."""
        d = self.to_dict()
        d.pop("manifest")
        d["tool_call_count"] = len(d.pop("tool_calls"))
        d["edit_count"] = len(d.pop("edits"))
        findings = d.pop("findings")
        d["findings_count"] = None if findings is None else len(findings)
        out = d.pop("output")
        d["output_preview"] = out[:200]
        d["output_chars"] = len(out)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Inverse of ``to_dict``; unknown keys are dropped so old rows still load."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})
