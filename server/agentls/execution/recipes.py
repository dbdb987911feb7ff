"""Running a recipe: its steps as a DAG of ordinary runs, with one parent record.

A ``RecipeRun`` owns one recipe while it runs. Every step (every file of a ``for_each`` step) is
a *unit*: an ordinary run started through the same path as ``agentls.run`` (the ``launch``
callable, ``AgentService.run``), so each has its own manifest, output, edits, findings and history
record, with ``parent`` set to the recipe's id. A unit starts as soon as the steps it needs are
done, within the step's ``max_parallel`` and ``max_in_flight`` (the engine's concurrency: units
wait here rather than in the engine's queue, which a 200-file fan-out would otherwise fill).

How it ends: a failed unit fails its step; the steps that need it are ``skipped``; without
``continue_on_error`` nothing new starts after a failure (what is running finishes) and the
recipe fails. Cancelling (``cancel``, or cancelling the task that awaits ``run``) cancels every
running unit through its run's own cancellation (processes killed, streams closed) and marks the
units that had not started ``cancelled``. The parent record is built once, after every unit has
ended, and handed to ``on_finished`` (history) exactly once.

Everything here runs on the event loop; templates are filled in one pass (``agents.recipe.fill``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from agentls.agents.definition import AgentDefinition
from agentls.agents.recipe import TEMPLATE, RecipeStep, fill
from agentls.errors import AgentlsError
from agentls.execution.engine import INTERNAL_ERROR, RunObserver
from agentls.execution.records import RunRecord, RunStatus
from agentls.requests import RunArgs

logger = logging.getLogger(__name__)

UNIT_OUTPUT_IN_TEMPLATE_CHARS = 200_000
"""The most characters of one unit's output that ``{{steps.<id>.output}}`` passes on."""

Launch = Callable[[RunArgs, RunObserver | None, str], Awaitable[dict[str, Any]]]
"""Starts one ordinary run as a step of the recipe whose id is the third argument, and returns
its result (``AgentService.run``). Raises ``AgentlsError`` when the run cannot be planned."""


class RecipeObserver(Protocol):
    """Who follows a recipe as it runs (the LSP layer's progress, the terminal)."""

    def started(self, recipe_id: str) -> None:
        """The recipe began; its steps start as their needs allow."""
        ...

    def step(
        self, recipe_id: str, step: str, agent: str, task: str, item: str | None
    ) -> RunObserver | None:
        """The observer of one unit's run (notifications carry ``parent``), or None."""
        ...

    def progress(self, recipe_id: str, done: int, total: int, running: Sequence[str]) -> None:
        """A unit started or ended: ``done`` of ``total`` units have ended."""
        ...

    def finished(self, record: RunRecord) -> None:
        """The recipe ended (after history has it)."""
        ...


@dataclass
class Unit:
    """One run of a step: the step itself, or one file of its ``for_each``."""

    step: RecipeStep
    item: str | None = None
    """The file, as the workspace shows it (``{{item}}``); None for a step without ``for_each``."""
    path: Path | None = None
    index: int | None = None
    """The item's position in the fan-out (0-based); None without ``for_each``."""
    status: str = "pending"
    """``pending``, ``running``, then a run status or ``skipped``."""
    run_id: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """How edits and progress name this unit: ``plan``, ``docs[3]``."""
        return self.step.id if self.index is None else f"{self.step.id}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        """The parent record's ``steps[]`` entry."""
        d: dict[str, Any] = {
            "id": self.step.id,
            "agent": self.step.agent,
            "run_id": self.run_id,
            "status": self.status,
        }
        if self.item is not None:
            d["item"] = self.item
            d["index"] = self.index
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass
class _StepState:
    units: list[Unit]
    left: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "pending"


class _UnitObserver:
    """Forwards one unit's run events, noting the run id as soon as there is one."""

    def __init__(self, unit: Unit, inner: RunObserver | None, on_start: Callable[[], None]) -> None:
        self._unit = unit
        self._inner = inner
        self._on_start = on_start

    def started(self, run_id: str) -> None:
        self._unit.run_id = run_id
        self._unit.status = "running"
        self._on_start()
        if self._inner is not None:
            self._inner.started(run_id)

    def output(self, run_id: str, seq: int, text: str) -> None:
        if self._inner is not None:
            self._inner.output(run_id, seq, text)

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        if self._inner is not None:
            self._inner.tool_call(run_id, event)

    def finished(self, record: RunRecord) -> None:
        self._unit.run_id = record.id
        if self._inner is not None:
            self._inner.finished(record)


class RecipeRun:
    """One recipe from start to its parent record. Create, then await ``run`` once."""

    def __init__(
        self,
        run_id: str,
        recipe: AgentDefinition,
        args: RunArgs,
        *,
        items: Mapping[str, Sequence[tuple[str, Path]]],
        launch: Launch,
        default_task: Callable[[str], str],
        max_in_flight: int,
        max_output_chars: int,
        observer: RecipeObserver | None = None,
        on_finished: Callable[[RunRecord], None] = lambda record: None,
        workspace: str | None = None,
    ) -> None:
        """Plan the units: one per step, or one per file of ``items[step.id]`` for ``for_each``."""
        self.id = run_id
        self.recipe = recipe
        self.args = args
        self._launch = launch
        self._default_task = default_task
        self._in_flight = asyncio.Semaphore(max(1, max_in_flight))
        self._max_output_chars = max_output_chars
        self._observer = observer
        self._on_finished = on_finished
        self._workspace = workspace
        self.started_at = time.time()
        self.units: list[Unit] = []
        self._steps: dict[str, _StepState] = {}
        for step in recipe.steps:
            if step.for_each is None:
                units = [Unit(step)]
            else:
                units = [
                    Unit(step, item=shown, path=path, index=n)
                    for n, (shown, path) in enumerate(items.get(step.id, ()))
                ]
            self.units.extend(units)
            self._steps[step.id] = _StepState(units, len(units))
            if not units:  # a for_each that matched nothing is done, and did nothing wrong
                self._steps[step.id].status = "succeeded"
                self._steps[step.id].done.set()
        self._limits = {
            s.id: asyncio.Semaphore(s.max_parallel) for s in recipe.steps if s.max_parallel
        }
        self._stopping = False
        """A unit failed without ``continue_on_error``: nothing new starts."""
        self._cancelled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._first_failure: Unit | None = None
        self._values: dict[str, str] = {}
        """Filled ``{{steps.<id>.<field>}}`` values of finished steps (they no longer change)."""
        self.ended = asyncio.Event()
        """Set once the parent record exists (the service waits for it at shutdown)."""

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel every running and waiting unit; False when the recipe already ended."""
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return False
        self._cancelled = True
        for task in pending:
            task.cancel()
        return True

    def progress(self) -> tuple[int, int, list[str]]:
        """Units ended, units in all, and the labels of the running ones."""
        ended = sum(1 for u in self.units if u.status not in ("pending", "running"))
        running = [u.label for u in self.units if u.status == "running"]
        return ended, len(self.units), running

    async def run(self) -> RunRecord:
        """Run every unit, record the recipe, return its record.

        Cancelling the awaiting task cancels the units, records the recipe as cancelled, and
        then re-raises the cancellation.
        """
        if self._observer is not None:
            self._observer.started(self.id)
        self._tasks = [
            asyncio.create_task(self._unit(u), name=f"agentls-recipe-{self.id}-{u.label}")
            for u in self.units
        ]
        try:
            if self._tasks:
                await asyncio.wait(self._tasks)
        except asyncio.CancelledError:
            self.cancel()
            await asyncio.wait(self._tasks)
            self._finish()
            raise
        return self._finish()

    # -- units -------------------------------------------------------------------------------

    async def _unit(self, unit: Unit) -> None:
        """Wait for the needs, take a slot, run; every way out leaves a final status."""
        try:
            for need in unit.step.needs:
                await self._steps[need].done.wait()
            blocked = [n for n in unit.step.needs if self._steps[n].status != "succeeded"]
            if blocked:
                unit.status = "skipped"
                status = self._steps[blocked[0]].status
                unit.error = f"needs {blocked[0]!r}, which did not succeed ({status})"
                return
            limit = self._limits.get(unit.step.id)
            if limit is not None:
                async with limit:
                    await self._start(unit)
            else:
                await self._start(unit)
        except asyncio.CancelledError:
            if unit.status in ("pending", "running"):
                unit.status = "cancelled"
        except AgentlsError as e:
            unit.status, unit.error = "failed", e.message
        except Exception:
            logger.exception("recipe %s: step %s failed", self.id, unit.label)
            unit.status, unit.error = "failed", INTERNAL_ERROR
        finally:
            self._ended(unit)

    async def _start(self, unit: Unit) -> None:
        async with self._in_flight:
            if self._stopping:
                unit.status = "skipped"
                failed = self._first_failure.label if self._first_failure else "a step"
                unit.error = f"not started: {failed} failed (set continue_on_error to go on)"
                return
            args = self._args_for(unit)
            inner = None
            if self._observer is not None:
                inner = self._observer.step(self.id, unit.step.id, args.agent, args.task, unit.item)
            observer = _UnitObserver(unit, inner, self._report)
            result = await self._launch(args, observer, self.id)
            unit.result = result
            unit.run_id = str(result.get("id"))
            unit.status = str(result.get("status"))
            if result.get("error"):
                unit.error = str(result["error"])

    def _args_for(self, unit: Unit) -> RunArgs:
        step = unit.step
        values = dict(self.args.variables)
        values["task"] = self.args.task
        if unit.item is not None:
            values["item"] = unit.item
        for name in TEMPLATE.findall(step.task or ""):
            values.update(self._step_value(name))
        if step.task is not None:
            task = fill(step.task, values)
        else:
            task = self.args.task or self._default_task(step.agent)
        files = self.args.files
        if unit.path is not None:
            files = (*files, str(unit.path))
        variables = dict(self.args.variables)
        if unit.item is not None:
            variables["item"] = unit.item
        return replace(self.args, agent=step.agent, task=task, files=files, variables=variables)

    def _step_value(self, name: str) -> dict[str, str]:
        """``{{steps.<id>.output|edits}}`` of a finished step, built once and kept: a fan-out of
        200 files reading another's 200 outputs must not join them 200 times."""
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "steps" or parts[1] not in self._steps:
            return {}
        state = self._steps[parts[1]]
        if not state.done.is_set():
            return {}
        value = self._values.get(name)
        if value is None:
            units = state.units
            value = self._outputs(units) if parts[2] == "output" else self._edit_summary(units)
            self._values[name] = value
        return {name: value}

    @staticmethod
    def _outputs(units: Sequence[Unit]) -> str:
        if len(units) == 1 and units[0].item is None:
            return _output_of(units[0])
        return "\n\n".join(f"### {u.item}\n{_output_of(u)}" for u in units)

    @staticmethod
    def _edit_summary(units: Sequence[Unit]) -> str:
        lines = []
        for u in units:
            for edit in (u.result or {}).get("edits") or []:
                added = removed = 0
                for line in str(edit.get("diff", "")).splitlines():
                    if line.startswith("+") and not line.startswith("+++"):
                        added += 1
                    elif line.startswith("-") and not line.startswith("---"):
                        removed += 1
                lines.append(
                    f"- {edit.get('path')}: edit {u.label}/{edit.get('id')} (+{added} -{removed})"
                )
        return "\n".join(lines) or "(no edits)"

    def _failed(self, unit: Unit) -> bool:
        """Whether a unit failed: a run that did not succeed, unless the recipe was cancelled
        (a step's run cancelled on its own, by its id, is a failure of the recipe)."""
        if unit.status == "cancelled":
            return not self._cancelled
        return unit.status not in ("succeeded", "skipped")

    def _ended(self, unit: Unit) -> None:
        if self._failed(unit):
            if self._first_failure is None:
                self._first_failure = unit
            if not self.recipe.continue_on_error:
                self._stopping = True
        state = self._steps[unit.step.id]
        state.left -= 1
        if state.left == 0:
            statuses = [u.status for u in state.units]
            bad = [s for s in statuses if s != "succeeded"]
            state.status = bad[0] if bad else "succeeded"
            state.done.set()
        self._report()

    def _report(self) -> None:
        if self._observer is None:
            return
        done, total, running = self.progress()
        try:
            self._observer.progress(self.id, done, total, running)
        except Exception:  # an observer never changes the recipe
            logger.exception("recipe observer failed")

    # -- the parent record -------------------------------------------------------------------

    def _finish(self) -> RunRecord:
        status: RunStatus
        error = None
        notes: list[str] = []
        failed = [u for u in self.units if self._failed(u)]
        if self._cancelled:
            status = "cancelled"
        elif failed and not self.recipe.continue_on_error:
            status = "failed"
            first = self._first_failure or failed[0]
            error = f"step {first.label} {first.status}: {first.error or 'see its run'}"
        else:
            status = "succeeded"
            if failed:
                labels = ", ".join(u.label for u in failed)
                notes.append(
                    f"{len(failed)} step run(s) did not succeed ({labels}); "
                    "continue_on_error kept the recipe going"
                )
        skipped = [u for u in self.units if u.status == "skipped"]
        if skipped:
            notes.append(f"{len(skipped)} step run(s) skipped")
        record = RunRecord(
            id=self.id,
            agent=self.recipe.name,
            task=self.args.task,
            status=status,
            output=self._summary_output(),
            started_at=self.started_at,
            duration_ms=round((time.time() - self.started_at) * 1000, 3),
            error=error,
            usage=_total_usage(self.units),
            workspace=self._workspace,
            notes=notes,
            steps=[u.to_dict() for u in self.units],
        )
        try:
            self._on_finished(record)
        except Exception:
            logger.exception("could not record recipe %s", self.id)
        if self._observer is not None:
            try:
                self._observer.finished(record)
            except Exception:
                logger.exception("recipe observer failed")
        self.ended.set()
        return record

    def _summary_output(self) -> str:
        """Each unit's output under a heading, in the recipe's order, within the output cap."""
        parts: list[str] = []
        size = 0
        for u in self.units:
            head = f"## {u.step.id}" + (f" · {u.item}" if u.item else "") + f" ({u.status})"
            body = _output_of(u) if u.result else (u.error or "")
            part = f"{head}\n\n{body.strip()}\n"
            if size + len(part) > self._max_output_chars:
                parts.append("\n(the rest is in each step's own run)\n")
                break
            parts.append(part)
            size += len(part)
        return "\n".join(parts)


def _output_of(unit: Unit) -> str:
    text = str((unit.result or {}).get("output") or "")
    if len(text) > UNIT_OUTPUT_IN_TEMPLATE_CHARS:
        return text[:UNIT_OUTPUT_IN_TEMPLATE_CHARS] + "\n(cut)"
    return text


def _total_usage(units: Sequence[Unit]) -> dict[str, int | None] | None:
    """Token counts summed over the units that reported any."""
    total: dict[str, int] = {}
    for u in units:
        usage = (u.result or {}).get("usage") or {}
        for key, value in usage.items():
            if isinstance(value, int) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return dict(total) if total else None
