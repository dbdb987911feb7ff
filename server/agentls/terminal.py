"""``agentls run``: one agent run from a terminal, through the same service the server uses.

Output streams to stdout as the backend produces it; the run's status and any error go to stderr.
``--json`` prints only the final result object (the same shape as ``agentls.run``) on stdout.
Exit codes: 0 succeeded, 1 failed / cancelled / timed out, 2 bad arguments or unknown agent.
"""

from __future__ import annotations

import asyncio
import os
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

    def finished(self, record: RunRecord) -> None:
        """End the output with a newline when the model did not."""
        if self._enabled and record.output and not record.output.endswith("\n"):
            sys.stdout.write("\n")


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
    elif args.dry_run:
        sys.stdout.write(result["prompt"])
        sys.stdout.write("\n")
        _manifest_to_stderr(result["manifest"])
    if result["status"] != "succeeded":
        sys.stderr.write(f"agentls: run {result['id']} {result['status']}: {result.get('error')}\n")
        return 1
    return 0


def _manifest_to_stderr(manifest: list[dict[str, Any]]) -> None:
    sys.stderr.write("\n--- manifest ---\n")
    for m in manifest:
        reason = f" ({m['reason']})" if m.get("reason") else ""
        sys.stderr.write(
            f"{m['status']:<9} {m['source']:<11} {m['path']}{reason} {m['bytes']} B "
            f"~{m['tokens']} tokens\n"
        )
