"""``agentls run``: one agent run from a terminal, through the same service the server uses.

Output streams to stdout as the backend produces it; the run's status and any error go to stderr,
as do the tool calls as they end, the run's notes, and its proposed edits as unified diffs (nothing
is written).
``--json`` prints only the final result object (the same shape as ``agentls.run``) on stdout.
A recipe prints one line per step on stderr as it starts and ends (steps run in parallel, so
their streams are not interleaved on stdout), then the recipe's output (every step's, under a
heading) on stdout. After a run that succeeded, the agent's ``handoffs`` (next steps) are printed
on stderr as the ``agentls run`` commands that take them.
Exit codes: 0 succeeded, 1 failed / cancelled / timed out, 2 bad arguments or unknown agent.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from agentls.execution.records import RunRecord


class _TerminalOutput:
    """A ``RunObserver`` that writes output chunks to stdout as they arrive."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def started(self, run_id: str) -> None:
        """Nothing to show before the first chunk."""

    def output(self, run_id: str, seq: int, text: str) -> None:
        """Stream the chunk."""
        if self._enabled:
            sys.stdout.write(text)
            sys.stdout.flush()

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        """What the agent does goes to stderr, beside the status (stdout is the answer)."""
        if self._enabled and event.get("status") != "started":
            sys.stderr.write(f"agentls: [{event.get('tool')}] {event.get('summary')}\n")

    def finished(self, record: RunRecord) -> None:
        """End the output with a newline when the model did not."""
        if self._enabled and record.output and not record.output.endswith("\n"):
            sys.stdout.write("\n")


class _StepLines:
    """A step's ``RunObserver`` for the terminal: one stderr line when it starts and ends."""

    def __init__(self, label: str) -> None:
        self._label = label

    def started(self, run_id: str) -> None:
        """The step's run got a slot."""
        sys.stderr.write(f"agentls: {self._label} started (run {run_id})\n")

    def output(self, run_id: str, seq: int, text: str) -> None:
        """Shown at the end, in the recipe's output."""

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        """Tool calls are in the step's run record."""

    def finished(self, record: RunRecord) -> None:
        """The step's run ended."""
        error = f": {record.error}" if record.error else ""
        seconds = record.duration_ms / 1000
        sys.stderr.write(f"agentls: {self._label} {record.status} in {seconds:.1f} s{error}\n")


class _TerminalRecipe:
    """A ``RecipeObserver`` for the terminal: step lines and a count on stderr."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._last = (-1, -1)

    def started(self, recipe_id: str) -> None:
        """The recipe began."""
        if self._enabled:
            sys.stderr.write(f"agentls: recipe {recipe_id} started\n")

    def step(
        self, recipe_id: str, step: str, agent: str, task: str, item: str | None
    ) -> _StepLines | None:
        """One line per step start and end."""
        if not self._enabled:
            return None
        return _StepLines(f"step {step}" + (f" [{item}]" if item else "") + f" ({agent})")

    def progress(self, recipe_id: str, done: int, total: int, running: Any) -> None:
        """``n/m steps done`` whenever a step ends."""
        if self._enabled and (done, total) != self._last and done:
            self._last = (done, total)
            sys.stderr.write(f"agentls: {done}/{total} steps done\n")

    def finished(self, record: RunRecord) -> None:
        """Printed by the caller (the summary output)."""


def run_once(
    *,
    workspace: str,
    agent: str,
    task: str,
    files: list[str],
    variables: list[str],
    dry_run: bool,
    as_json: bool,
    trust: bool,
) -> int:
    """Run one agent in ``workspace`` and report as described in the module docstring."""
    import logging

    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="agentls: %(levelname)s %(message)s"
    )
    folder = Path(os.path.realpath(workspace))
    if not folder.is_dir():
        sys.stderr.write(f"agentls: {workspace} is not a directory\n")
        return 2
    var_map: dict[str, str] = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            sys.stderr.write(f"agentls: --var expects NAME=VALUE, got {item!r}\n")
            return 2
        var_map[name] = value
    raw: dict[str, Any] = {"agent": agent, "task": task, "dry_run": dry_run}
    if files:
        raw["files"] = files
    if var_map:
        raw["variables"] = var_map
    return asyncio.run(_run(folder, raw, as_json=as_json, trust=trust))


async def _run(folder: Path, raw: dict[str, Any], *, as_json: bool, trust: bool) -> int:
    import orjson

    from agentls.config import load_settings
    from agentls.errors import AgentlsError
    from agentls.requests import parse_run
    from agentls.service import AgentService, NoBuffers

    settings = load_settings([folder], {"trusted": True} if trust else None)
    for problem in settings.problems:
        sys.stderr.write(f"agentls: configuration: {problem}\n")
    service = AgentService(settings, [folder], watch=False)
    await service.start()
    try:
        args = parse_run(raw)
        recipe = service.is_recipe(args.agent)
        if recipe:
            result = await service.run_recipe(args, NoBuffers(), _TerminalRecipe(not as_json))
        else:
            result = await service.run(args, NoBuffers(), _TerminalOutput(not as_json))
    except AgentlsError as e:
        sys.stderr.write(f"agentls: {e.message}\n")
        return 2
    finally:
        await service.shutdown()
    if not as_json and result.get("model_note"):
        sys.stderr.write(f"agentls: note: {result['model_note']}\n")
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.dry_run and recipe:
        sys.stdout.write(result["output"])
    elif args.dry_run:
        sys.stdout.write(result["prompt"])
        sys.stdout.write("\n")
        _manifest_to_stderr(result["manifest"])
    else:
        if recipe:
            sys.stdout.write(result["output"])
        for note in result.get("notes") or ():
            sys.stderr.write(f"agentls: note: {note}\n")
        _edits_to_stderr(result.get("edits") or [])
        if result["status"] == "succeeded":
            _handoffs_to_stderr(result.get("handoffs") or [])
    if result["status"] != "succeeded":
        sys.stderr.write(f"agentls: run {result['id']} {result['status']}: {result.get('error')}\n")
        return 1
    return 0


def _edits_to_stderr(edits: list[dict[str, Any]]) -> None:
    """Proposed edits as unified diffs: nothing was written (``git apply`` reads them)."""
    if not edits:
        return
    sys.stderr.write(f"\n--- {len(edits)} proposed edit(s), not written ---\n")
    for edit in edits:
        sys.stderr.write(edit["diff"])


def _handoffs_to_stderr(handoffs: list[dict[str, Any]]) -> None:
    """The next steps the agent offers (Copilot's ``handoffs``), as commands to copy."""
    for h in handoffs:
        task = f" --task {shlex.quote(h['prompt'])}" if h.get("prompt") else ""
        sys.stderr.write(
            f"agentls: next: {h['label']}: agentls run {shlex.quote(h['agent'])}{task}\n"
        )


def _manifest_to_stderr(manifest: list[dict[str, Any]]) -> None:
    sys.stderr.write("\n--- manifest ---\n")
    for m in manifest:
        reason = f" ({m['reason']})" if m.get("reason") else ""
        sys.stderr.write(
            f"{m['status']:<9} {m['source']:<11} {m['path']}{reason} {m['bytes']} B "
            f"~{m['tokens']} tokens\n"
        )
