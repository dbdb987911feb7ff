"""The execution engine: owner of the runs that are queued or running.

Every run is one asyncio task. A semaphore of ``max_concurrent`` slots decides when a queued run
starts; at most ``max_queued`` runs may wait for a slot, beyond that ``submit`` refuses with
``Overloaded`` instead of growing without bound. A run ends in exactly one final status:

* ``succeeded``: the backend's stream ended normally;
* ``failed``: the backend raised ``BackendError`` (its message is the run's error), the output
  went over ``max_output_bytes`` (kept up to the cap), or something unexpected happened (logged
  with its traceback; the run only says "internal error; see the server log", because exception
  text may carry paths or secrets);
* ``cancelled``: ``cancel`` was called (a queued run never starts; a running run's task is
  cancelled, which is what makes the backend close its HTTP stream or kill its process group);
* ``timed_out``: the run took longer than its job's timeout (the time spent queued does not count).

Partial output is kept in every case, with its secrets redacted (``context/secrets.py``, the
detectors the prompt's files go through) before the record exists: a model may repeat a key it
read with a tool, and history keeps records on disk. The streamed pieces (``RunObserver.output``)
are not redacted: they go only to the editor, as they arrive. The scan costs about 6 ms per MB:
an output up to ``INLINE_SCAN_CHARS`` is scanned on the event loop, a longer one (up to the 8 MB
default cap: 50 ms) in a worker thread, so the loop keeps answering. Each finished run is handed
to
``on_finished`` (history,
metrics) exactly once, then to the observer, and then resolves its handle. Observers are the LSP
layer's business: an exception in one is logged and never changes the run.

All state here is changed on the event loop; nothing in this module blocks it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentls.backends.base import Backend, BackendError, BackendRequest, TextDelta, ToolCall, Usage
from agentls.context.secrets import Finding, redact_text
from agentls.errors import AgentlsError, Overloaded
from agentls.execution.records import RunRecord, RunStatus
from agentls.execution.tool_loop import ToolPlan, run_loop
from agentls.tools.toolbox import ToolOutcome

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error; see the server log"
"""The error of a run that failed for a reason that is a bug, not the backend's doing."""

INLINE_SCAN_CHARS = 256 * 1024
"""Outputs up to this many characters are scanned for secrets on the event loop (about 1.5 ms);
longer ones in a worker thread."""


@dataclass(frozen=True)
class RunJob:
    """Everything one run needs, decided before it is submitted (the engine decides nothing)."""

    id: str
    agent: str
    task: str
    backend: Backend | None
    """None for a run refused before it started (``ExecutionEngine.refuse``) or a dry run."""
    backend_name: str | None
    model: str | None
    request: BackendRequest
    timeout: float
    """Seconds the run may take once started; 0 or less means no limit."""
    max_output_bytes: int
    """UTF-8 bytes of output kept; more fails the run (the first ``max_output_bytes`` are kept)."""
    manifest: list[dict[str, Any]] = field(default_factory=list)
    workspace: str | None = None
    started_at: float = field(default_factory=time.time)
    """Unix time the run was asked for (its record's ``started_at``)."""
    tools: ToolPlan | None = None
    """The tool loop's plan; None: one model call without tools (``command`` backends,
    ``tools: []``)."""
    notes: tuple[str, ...] = ()
    """Notes known before the run starts (tools not offered, and why)."""
    finalize: Callable[[RunRecord], RunRecord] | None = None
    """Completes the record before anyone sees it (findings parsed from the output)."""
    parent: str | None = None
    """The recipe run this run is a step of, if any (its record's ``parent``)."""


class RunObserver(Protocol):
    """Who wants to follow one run as it happens (the LSP layer's progress reporting)."""

    def started(self, run_id: str) -> None:
        """The run got a slot and its backend is being called."""
        ...

    def output(self, run_id: str, seq: int, text: str) -> None:
        """A piece of output; ``seq`` counts 0, 1, 2... per run, in order."""
        ...

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        """A tool call started or ended: ``{call_id, tool, status, summary}``."""
        ...

    def finished(self, record: RunRecord) -> None:
        """The run ended (after history has it)."""
        ...


class RunHandle:
    """A submitted run as its submitter sees it: identity, live status, and its final record."""

    def __init__(self, run_id: str, agent: str, submitted_at: float) -> None:
        """Create a queued handle; the engine moves ``status`` along."""
        self.id = run_id
        self.agent = agent
        self.submitted_at = submitted_at
        """Unix time of ``submit``."""
        self.status: RunStatus = "queued"
        """``queued``, ``running``, then one final status."""
        self.output_chars = 0
        """Characters of output so far."""
        self.record: RunRecord | None = None
        """The final record, once there is one."""
        self.first_prompt_tokens: int | None = None
        """The prompt tokens the provider counted for the first turn (what calibration needs:
        the prompt the context builder measured, without later turns)."""
        self._done: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()

    async def wait(self) -> RunRecord:
        """The final record. Never raises for a run's failure; cancelling the waiter is safe."""
        return await asyncio.shield(self._done)

    def _resolve(self, record: RunRecord) -> None:
        self.record = record
        self.status = record.status
        if not self._done.done():
            self._done.set_result(record)


class _Run:
    """The engine's own bookkeeping for one run."""

    def __init__(self, job: RunJob, handle: RunHandle, observer: RunObserver | None) -> None:
        self.job = job
        self.handle = handle
        self.observer = observer
        self.task: asyncio.Task[None] | None = None
        self.queued = True
        """Counted in the engine's queue (waiting for a slot)."""
        self.chunks: list[str] = []
        self.output_bytes = 0
        self.seq = 0
        self.usage: dict[str, int | None] | None = None
        """Summed over the turns that are over."""
        self.turn_usage: dict[str, int | None] | None = None
        """The current turn's figures (providers report them piecewise)."""
        self.turns = 0
        self.tool_calls: list[dict[str, Any]] = []
        self.open_calls: dict[int, int] = {}
        """Calls started and not finished: ``id(ToolCall)`` -> index in ``tool_calls``."""
        self.edits: list[dict[str, Any]] = []
        self.tool_reads: list[tuple[int, dict[str, Any]]] = []
        """Manifest rows of the files tools read, each with its call's place in ``tool_calls``
        (parallel reads finish in any order; the manifest lists them in the model's)."""
        self.notes: list[str] = list(job.notes)
        self.overflow: str | None = None
        """Set when the output went over the cap: the error the run fails with."""
        self.started_mono: float | None = None
        self.cancel_requested = False
        self.ending = False
        """The backend is done and the record is being built (its output scanned): too late to
        cancel."""
        self.finished = False


class ExecutionEngine:
    """Runs jobs with a concurrency limit, a bounded queue, timeouts and cancellation."""

    def __init__(
        self,
        *,
        max_concurrent: int,
        max_queued: int,
        on_finished: Callable[[RunRecord], None] | None = None,
    ) -> None:
        """Create an idle engine.

        Args:
            max_concurrent: Runs that may be running at once (at least 1 is used).
            max_queued: Runs that may wait for a slot; one more is refused with ``Overloaded``.
            on_finished: Called once per finished run, before the observer (history, metrics).
        """
        self._max_concurrent = max(1, max_concurrent)
        self._max_queued = max(0, max_queued)
        self._slots = asyncio.Semaphore(self._max_concurrent)
        self._on_finished = on_finished
        self._runs: dict[str, _Run] = {}
        """Queued and running runs by id; a run leaves when it is finished."""
        self._queued = 0
        """Submitted runs that do not hold a slot yet."""
        self._running = 0
        """Runs holding a slot."""
        self._closed = False

    # -- public API ---------------------------------------------------------------------------

    def submit(self, job: RunJob, observer: RunObserver | None = None) -> RunHandle:
        """Queue a run; it starts as soon as a slot is free.

        Raises:
            Overloaded: ``max_queued`` runs are already waiting.
            AgentlsError: The engine is shut down, or the run id is already in use.
        """
        if self._closed:
            raise AgentlsError("the server is shutting down; the run was not started")
        if job.id in self._runs:
            raise AgentlsError(f"a run with id {job.id!r} is already active")
        # Runs not yet holding a slot, less the slots free right now: those really wait.
        waiting = self._queued - (self._max_concurrent - self._running)
        if waiting >= self._max_queued:
            raise Overloaded(
                f"too many runs are waiting ({waiting} queued, "
                f"{self._running} running); try again later"
            )
        handle = RunHandle(job.id, job.agent, time.time())
        run = _Run(job, handle, observer)
        self._runs[job.id] = run
        self._queued += 1
        run.task = asyncio.create_task(self._execute(run), name=f"agentls-run-{job.id}")
        run.task.add_done_callback(lambda task: self._task_done(run, task))
        return handle

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run; False for unknown or already finished ids."""
        run = self._runs.get(run_id)
        if run is None or run.finished or run.ending or run.task is None or run.task.done():
            return False
        if run.cancel_requested:
            return True  # a second cancel must not interrupt the backend's own cleanup
        run.cancel_requested = True
        run.task.cancel()
        # A queued run will never take a slot now: free its place in the queue at once.
        self._leave_queue(run)
        return True

    def get(self, run_id: str) -> RunHandle | None:
        """The handle of a queued or running run (finished runs are in history)."""
        run = self._runs.get(run_id)
        return run.handle if run is not None else None

    def active(self) -> list[dict[str, Any]]:
        """Queued and running runs, oldest first, in the short form ``agentls.status`` shows."""
        return [
            {
                "id": run.handle.id,
                "agent": run.handle.agent,
                "status": run.handle.status,
                "submitted_at": run.handle.submitted_at,
                "output_chars": run.handle.output_chars,
            }
            for run in self._runs.values()
        ]

    async def shutdown(self, timeout: float = 1.0) -> None:  # noqa: ASYNC109 - a wait bound
        """Refuse new runs, cancel every run, and wait up to ``timeout`` s for them to end."""
        self._closed = True
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                logger.warning("%d run(s) did not stop within %.1f s", len(pending), timeout)

    def refuse(self, job: RunJob, error: str, observer: RunObserver | None = None) -> RunRecord:
        """Record a run refused before it started (untrusted backend, unknown kind...).

        Such a run never takes a slot, but it is finished like any other: history and metrics
        (``on_finished``), then the observer, with the reason as its error.
        """
        record = self.record(job, "failed", error=error, notes=list(job.notes))
        run = _Run(job, RunHandle(job.id, job.agent, job.started_at), observer)
        run.finished = True
        self._hand_out(run, record)
        return record

    @staticmethod
    def record(
        job: RunJob,
        status: RunStatus,
        *,
        output: str = "",
        scanned: tuple[str, tuple[Finding, ...]] | None = None,
        error: str | None = None,
        usage: dict[str, int | None] | None = None,
        duration_ms: float = 0.0,
        started_at: float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        edits: list[dict[str, Any]] | None = None,
        tool_reads: list[dict[str, Any]] | None = None,
        turns: int = 0,
        notes: list[str] | None = None,
    ) -> RunRecord:
        """The one place a run's record is built from its job and how it ended.

        ``started_at`` defaults to the job's; a submitted run passes its submit time. The files
        tools read follow the prompt's in the manifest. ``output`` is redacted here (secrets
        never reach a record) unless ``scanned`` already holds it redacted (``_scan_output``).
        """
        redacted, secrets = scanned if scanned is not None else redact_text(output)
        return RunRecord(
            id=job.id,
            agent=job.agent,
            task=job.task,
            status=status,
            output=redacted,
            started_at=job.started_at if started_at is None else started_at,
            duration_ms=duration_ms,
            backend=job.backend_name,
            model=job.model,
            error=error,
            usage=usage,
            manifest=job.manifest + tool_reads if tool_reads else job.manifest,
            workspace=job.workspace,
            tool_calls=tool_calls or [],
            edits=edits or [],
            turns=turns,
            notes=notes or [],
            output_secrets=[{"line": f.line, "kind": f.kind} for f in secrets],
            parent=job.parent,
        )

    # -- the life of a run ----------------------------------------------------------------------

    async def _execute(self, run: _Run) -> None:
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            self._leave_queue(run)
            self._finish(run, "cancelled", None)
            return
        self._leave_queue(run)
        self._running += 1
        try:
            run.handle.status = "running"
            run.started_mono = time.monotonic()
            self._notify(run, "started", run.job.id)
            status, error = await self._drive(run)
        finally:
            self._running -= 1
            self._slots.release()
        run.ending = True
        self._finish(run, status, error, await self._scan_output(run))

    @staticmethod
    async def _scan_output(run: _Run) -> tuple[str, tuple[Finding, ...]]:
        """The run's output with its secrets redacted; a long one is scanned in a thread.

        The run has ended by now, so a cancel that arrives during the scan changes nothing: the
        scan (bounded by the output cap) is waited for, and the run keeps its status.
        """
        text = "".join(run.chunks)
        if len(text) <= INLINE_SCAN_CHARS:
            return redact_text(text)
        scan = asyncio.ensure_future(asyncio.to_thread(redact_text, text))
        while True:
            try:
                return await asyncio.shield(scan)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()

    async def _drive(self, run: _Run) -> tuple[RunStatus, str | None]:
        """Run the backend under the job's timeout; map every way it can end to a status."""
        job = run.job
        deadline = asyncio.timeout(job.timeout if job.timeout > 0 else None)
        try:
            async with deadline:
                await self._pump(run)
        except TimeoutError:
            if deadline.expired():
                return "timed_out", f"timed out after {job.timeout:g} s"
            logger.exception("run %s (agent %s): unexpected timeout error", job.id, job.agent)
            return "failed", INTERNAL_ERROR
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # we own this task: its cancellation is the run's end, handled
            return "cancelled", None
        except BackendError as e:
            return "failed", e.message
        except Exception:
            logger.exception("run %s (agent %s) failed unexpectedly", job.id, job.agent)
            return "failed", INTERNAL_ERROR
        if run.overflow is not None:
            return "failed", run.overflow
        return "succeeded", None

    async def _pump(self, run: _Run) -> None:
        """Move the backend's events into the run until the stream ends or the output is full.

        A run with tools hands the conversation to the tool loop, which reports through the same
        run (``_Sink``).
        """
        backend = run.job.backend
        if backend is None:  # refused runs never reach the engine's queue
            raise BackendError("no backend")
        sink = _Sink(self, run)
        if run.job.tools is not None:
            await run_loop(backend, run.job.request, run.job.tools, sink)
            return
        sink.turn_started()
        stream = backend.stream(run.job.request)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if not self._append(run, event.text):
                        break
                elif isinstance(event, Usage):
                    sink.usage(event)
        finally:
            await _close_stream(stream)

    def _append(self, run: _Run, text: str) -> bool:
        """Keep a piece of output and pass it on; False once the output cap is reached."""
        if not text:
            return True
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from a provider's JSON: keep the rest
            data = text.encode("utf-8", errors="replace")
            text = data.decode("utf-8")
        room = run.job.max_output_bytes - run.output_bytes
        full = len(data) > room
        if full:
            text = data[: max(0, room)].decode("utf-8", errors="ignore")
            data = text.encode("utf-8")
            run.overflow = (
                f"output exceeded the limit of {run.job.max_output_bytes} bytes; "
                "the rest was discarded"
            )
        if text:
            run.chunks.append(text)
            run.output_bytes += len(data)
            run.handle.output_chars += len(text)
            seq = run.seq
            run.seq += 1
            self._notify(run, "output", run.job.id, seq, text)
        return not full

    @staticmethod
    def _end_turn(run: _Run) -> None:
        """Add the turn's usage to the run's: a run's usage is the sum over its turns."""
        turn, run.turn_usage = run.turn_usage, None
        if turn is None:
            return
        if run.turns == 1:
            run.handle.first_prompt_tokens = turn["prompt_tokens"]
        total = run.usage or {"prompt_tokens": None, "completion_tokens": None}
        for key, value in turn.items():
            if value is not None:
                total[key] = (total.get(key) or 0) + value
        run.usage = total

    def _leave_queue(self, run: _Run) -> None:
        if run.queued:
            run.queued = False
            self._queued -= 1

    def _finish(
        self,
        run: _Run,
        status: RunStatus,
        error: str | None,
        scanned: tuple[str, tuple[Finding, ...]] | None = None,
    ) -> None:
        """Build the final record and hand it out, exactly once per run.

        ``scanned`` is the redacted output when the caller has it (``_scan_output``); the paths
        that end a run before it produced anything scan here.
        """
        if run.finished:
            return
        run.finished = True
        job = run.job
        duration = 0.0 if run.started_mono is None else time.monotonic() - run.started_mono
        self._end_turn(run)
        for index in run.open_calls.values():  # cancelled or timed out while a tool ran
            run.tool_calls[index].update(status="failed", summary="stopped before it finished")
        record = self.record(
            job,
            status,
            output="".join(run.chunks),
            scanned=scanned,
            error=error,
            usage=run.usage,
            duration_ms=round(duration * 1000, 3),
            started_at=run.handle.submitted_at,
            tool_calls=run.tool_calls,
            edits=run.edits,
            tool_reads=[read for _, read in sorted(run.tool_reads, key=lambda r: r[0])],
            turns=run.turns,
            notes=run.notes,
        )
        run.chunks = []
        if job.finalize is not None:
            try:
                record = job.finalize(record)
            except Exception:
                logger.exception("completing the record of run %s failed", job.id)
        self._runs.pop(job.id, None)
        self._hand_out(run, record)

    def _hand_out(self, run: _Run, record: RunRecord) -> None:
        """A finished record goes to ``on_finished``, then to the observer, then to the handle."""
        job = run.job
        run.handle.status = record.status
        if self._on_finished is not None:
            try:
                self._on_finished(record)
            except Exception:
                logger.exception("recording run %s failed", job.id)
        self._notify(run, "finished", record)
        run.handle._resolve(record)

    def _task_done(self, run: _Run, task: asyncio.Task[None]) -> None:
        """Safety net: a task cancelled before its first step never ran ``_execute`` at all."""
        if run.finished:
            return
        self._leave_queue(run)
        if task.cancelled():
            self._finish(run, "cancelled", None)
            return
        exc = task.exception()
        if exc is not None:
            logger.error("run %s ended abnormally", run.job.id, exc_info=exc)
        self._finish(run, "failed", INTERNAL_ERROR)

    @staticmethod
    def _notify(run: _Run, event: str, *args: Any) -> None:
        method = getattr(run.observer, event, None)  # observers may not follow tool calls
        if method is None:
            return
        try:
            method(*args)
        except Exception:
            logger.exception("run observer failed in %s for run %s", event, run.job.id)


class _Sink:
    """The tool loop's view of one run (``tool_loop.LoopSink``), owned by the engine."""

    def __init__(self, engine: ExecutionEngine, run: _Run) -> None:
        self._engine = engine
        self._run = run

    def text(self, text: str) -> bool:
        return self._engine._append(self._run, text)

    def usage(self, usage: Usage) -> None:
        """Merge a report into the turn's: providers send prompt and completion counts apart."""
        run = self._run
        current = run.turn_usage or {"prompt_tokens": None, "completion_tokens": None}
        if usage.prompt_tokens is not None:
            current["prompt_tokens"] = usage.prompt_tokens
        if usage.completion_tokens is not None:
            current["completion_tokens"] = usage.completion_tokens
        run.turn_usage = current

    def turn_started(self) -> None:
        run = self._run
        ExecutionEngine._end_turn(run)
        run.turns += 1

    def tool_started(self, call: ToolCall, summary: str) -> None:
        run = self._run
        run.open_calls[id(call)] = len(run.tool_calls)
        run.tool_calls.append(
            {"call_id": call.call_id, "tool": call.name, "status": "started", "summary": summary}
        )
        event = {"call_id": call.call_id, "tool": call.name, "status": "started"}
        ExecutionEngine._notify(run, "tool_call", run.job.id, {**event, "summary": summary})

    def tool_finished(self, call: ToolCall, trace: dict[str, Any], outcome: ToolOutcome) -> None:
        run = self._run
        index = run.open_calls.pop(id(call), None)
        if index is None:
            run.tool_calls.append(trace)
            index = len(run.tool_calls) - 1
        else:
            run.tool_calls[index] = trace
        run.tool_reads.extend((index, read) for read in outcome.reads)
        if outcome.edit is not None:
            run.edits.append(outcome.edit.to_dict())
        event = {key: trace[key] for key in ("call_id", "tool", "status", "summary")}
        ExecutionEngine._notify(run, "tool_call", run.job.id, event)

    def note(self, text: str) -> None:
        self._run.notes.append(text)


async def _close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a backend stream so its cleanup (killing processes, closing sockets) runs now."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
