"""The arguments of each command, checked strictly before any work starts.

Every command takes one JSON object. Checking is explicit and never coerces: a string is not a list,
``1`` is not ``true``, ``"5"`` is not a number. Unknown keys are refused too, so a misspelt field is
reported instead of silently ignored. Each failure is an ``InvalidArguments`` naming the field.
These types are shared by the LSP commands and the ``agentls`` command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentls.errors import InvalidArguments

MAX_TASK_CHARS = 1_000_000
"""A task longer than this is refused; it would not fit any model's context anyway."""

MAX_FILES = 1_000
"""The most entries ``files`` may list. Each is resolved and judged on the event loop; 400,000 of
them took 39 s and starved every other request. Globs are the way to attach many files."""


@dataclass(frozen=True)
class Position:
    """A 0-based LSP position (character in UTF-16 code units)."""

    line: int
    character: int


@dataclass(frozen=True)
class RangeArg:
    """An LSP range as the client sends it."""

    start: Position
    end: Position


@dataclass(frozen=True)
class RunArgs:
    """``agentls.run`` and ``agentls.context.preview``."""

    agent: str
    task: str = ""
    uri: str | None = None
    range: RangeArg | None = None
    files: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False


@dataclass(frozen=True)
class HistoryListArgs:
    """``agentls.history.list``."""

    limit: int = 50
    agent: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class EditsApplyArgs:
    """``agentls.edits.apply``: a run's edits, all of its proposed ones or those named."""

    id: str
    edits: tuple[str, ...] | None = None
    confirm: bool = True
    """Whether the editor is asked to confirm each change (LSP change annotations with
    ``needsConfirmation``: VS Code's refactor preview) or to apply the edit at once (the user
    already accepted it, e.g. with the extension's "Accept All")."""


RUN_STATUSES = ("succeeded", "failed", "cancelled", "timed_out")

MEMORY_ACTIONS = ("start", "snapshot", "stop")
MEMORY_TOP_MAX = 200


@dataclass(frozen=True)
class MemoryProfileArgs:
    """``agentls.memory.profile``."""

    action: str
    """``start``, ``snapshot`` or ``stop``."""
    top: int = 20
    """Rows in each list of a snapshot (1 to ``MEMORY_TOP_MAX``)."""


def single_object(arguments: Sequence[Any] | None, *, optional: bool = False) -> dict[str, Any]:
    """The one object argument of a command (``[]`` or no arguments is ``{}`` when optional)."""
    if arguments is None or len(arguments) == 0:
        if optional:
            return {}
        raise InvalidArguments("arguments", "expected one object argument")
    if len(arguments) != 1:
        raise InvalidArguments("arguments", f"expected one object argument, got {len(arguments)}")
    obj = arguments[0]
    if obj is None and optional:
        return {}
    if isinstance(obj, list) and not obj:
        # Lua cannot tell an empty object from an empty list, and Neovim encodes ``{}`` as ``[]``.
        return {}
    if not isinstance(obj, dict):
        raise InvalidArguments("arguments", f"expected an object, got {json_kind(obj)}")
    return obj


def parse_run(raw: Mapping[str, Any], *, dry_run_allowed: bool = True) -> RunArgs:
    """Check ``agentls.run`` / ``agentls.context.preview`` arguments."""
    allowed = {"agent", "task", "uri", "range", "files", "variables"}
    if dry_run_allowed:
        allowed.add("dry_run")
    _no_unknown(raw, allowed)
    agent = _str(raw, "agent", required=True)
    assert agent is not None
    if not agent.strip():
        raise InvalidArguments("agent", "must not be empty")
    task = _str(raw, "task") or ""
    if len(task) > MAX_TASK_CHARS:
        raise InvalidArguments("task", f"longer than {MAX_TASK_CHARS} characters")
    uri = _str(raw, "uri")
    rng = _range(raw.get("range")) if raw.get("range") is not None else None
    if rng is not None and uri is None:
        raise InvalidArguments("range", "a range needs a uri")
    files = raw.get("files")
    if files is None:
        file_list: tuple[str, ...] = ()
    elif isinstance(files, list) and len(files) > MAX_FILES:
        raise InvalidArguments("files", f"at most {MAX_FILES:,} entries, got {len(files):,}")
    elif isinstance(files, list) and all(isinstance(f, str) and f for f in files):
        file_list = tuple(files)
    else:
        raise InvalidArguments("files", "expected a list of non-empty strings (URIs or paths)")
    variables = raw.get("variables")
    if variables is None:
        var_map: dict[str, str] = {}
    elif isinstance(variables, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        var_map = dict(variables)
    else:
        raise InvalidArguments("variables", "expected an object of string values")
    dry = raw.get("dry_run", False)
    if not isinstance(dry, bool):
        raise InvalidArguments("dry_run", f"expected a boolean, got {json_kind(dry)}")
    return RunArgs(agent, task, uri, rng, file_list, var_map, dry)


def parse_run_id(raw: Mapping[str, Any]) -> str:
    """``agentls.runs.cancel`` / ``agentls.history.get``: ``{id}``."""
    _no_unknown(raw, {"id"})
    run_id = _str(raw, "id", required=True)
    assert run_id is not None
    return run_id


def parse_edits_apply(raw: Mapping[str, Any]) -> EditsApplyArgs:
    """``agentls.edits.apply``: ``{id, edits?: [edit ids], confirm?: bool}``."""
    _no_unknown(raw, {"id", "edits", "confirm"})
    run_id = _str(raw, "id", required=True)
    assert run_id is not None
    confirm = raw.get("confirm", True)
    if not isinstance(confirm, bool):
        raise InvalidArguments("confirm", f"expected a boolean, got {json_kind(confirm)}")
    edits = raw.get("edits")
    if edits is None:
        return EditsApplyArgs(run_id, confirm=confirm)
    if not isinstance(edits, list) or not edits or not all(isinstance(e, str) and e for e in edits):
        raise InvalidArguments("edits", "expected a non-empty list of edit ids")
    return EditsApplyArgs(run_id, tuple(dict.fromkeys(edits)), confirm)


def parse_history_list(raw: Mapping[str, Any]) -> HistoryListArgs:
    """``agentls.history.list``: ``{limit?, agent?, status?}``."""
    _no_unknown(raw, {"limit", "agent", "status"})
    limit = raw.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidArguments("limit", "expected an integer from 1 to 10000")
    status = _str(raw, "status")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidArguments("status", f"expected one of {', '.join(RUN_STATUSES)}")
    return HistoryListArgs(limit, _str(raw, "agent"), status)


@dataclass(frozen=True)
class FindingsClearArgs:
    """``agentls.findings.clear``: everything when both are unset."""

    agent: str | None = None
    uri: str | None = None


def parse_findings_clear(raw: Mapping[str, Any]) -> FindingsClearArgs:
    """``agentls.findings.clear``: ``{agent?, uri?}``."""
    _no_unknown(raw, {"agent", "uri"})
    return FindingsClearArgs(_str(raw, "agent"), _str(raw, "uri"))


@dataclass(frozen=True)
class AskArgs:
    """``agentls.ask``: a run started from a code action or code lens, its result shown."""

    run: RunArgs
    task_given: bool
    """Whether the caller passed ``task`` (else the agent's default task is used)."""
    preview: bool = False
    """Show the context the run would send instead of running."""


def parse_ask(raw: Mapping[str, Any]) -> AskArgs:
    """``agentls.ask``: ``{agent, uri?, range?, task?, variables?, preview?}``."""
    _no_unknown(raw, {"agent", "uri", "range", "task", "variables", "preview"})
    preview = raw.get("preview", False)
    if not isinstance(preview, bool):
        raise InvalidArguments("preview", f"expected a boolean, got {json_kind(preview)}")
    run = parse_run({k: v for k, v in raw.items() if k != "preview"}, dry_run_allowed=False)
    return AskArgs(run, raw.get("task") is not None, preview)


def parse_memory_profile(raw: Mapping[str, Any]) -> MemoryProfileArgs:
    """``agentls.memory.profile``: ``{action, top?}``."""
    _no_unknown(raw, {"action", "top"})
    action = _str(raw, "action", required=True)
    if action not in MEMORY_ACTIONS:
        raise InvalidArguments("action", f"expected one of {', '.join(MEMORY_ACTIONS)}")
    top = raw.get("top", 20)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MEMORY_TOP_MAX:
        raise InvalidArguments("top", f"expected an integer from 1 to {MEMORY_TOP_MAX}")
    return MemoryProfileArgs(action, top)


def parse_empty(raw: Mapping[str, Any]) -> None:
    """Commands that take no fields still refuse unknown ones."""
    _no_unknown(raw, set())


def _no_unknown(raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidArguments(unknown[0], "unknown field")


def _str(raw: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise InvalidArguments(key, "required")
        return None
    if not isinstance(value, str):
        raise InvalidArguments(key, f"expected a string, got {json_kind(value)}")
    return value


def _int(raw: Any, key: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise InvalidArguments(key, "expected a non-negative integer")
    return raw


def _range(raw: Any) -> RangeArg:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("start"), dict)
        or not isinstance(raw.get("end"), dict)
    ):
        raise InvalidArguments("range", "expected {start: {line, character}, end: {...}}")
    start = Position(
        _int(raw["start"].get("line"), "range.start.line"),
        _int(raw["start"].get("character"), "range.start.character"),
    )
    end = Position(
        _int(raw["end"].get("line"), "range.end.line"),
        _int(raw["end"].get("character"), "range.end.character"),
    )
    if (end.line, end.character) < (start.line, start.character):
        raise InvalidArguments("range", "end is before start")
    return RangeArg(start, end)


def json_kind(value: Any) -> str:
    """How a JSON value reads in an error message ("a string", "a list", "null"...)."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
