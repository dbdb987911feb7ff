"""Streaming a run to the editor: ``$/progress`` and the ``agentls/*`` run notifications.

One ``RunProgress`` per ``agentls.run`` request. It implements the engine's ``RunObserver``:
``agentls/runStarted``, then every output chunk as ``agentls/output {id, seq, text}`` in order (and
each tool call as ``agentls/toolCall {id, call_id, tool, status, summary}`` when it starts and
ends), then ``agentls/runFinished``. When there is a work-done token (the client's own, or one
created because the client supports it) it also sends begin / report / end, with the newest output
text (or what the agent is doing: "reading src/app.py") as the report message, and the client's
Cancel button cancels the run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from agentls.execution.records import RunRecord

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

logger = logging.getLogger(__name__)

RUN_STARTED = "agentls/runStarted"
RUN_OUTPUT = "agentls/output"
RUN_FINISHED = "agentls/runFinished"
RUN_TOOL_CALL = "agentls/toolCall"
REPORT_TAIL_CHARS = 200
"""How much of the newest output a progress report shows (a notification area line, not a log)."""


class _WorkDone:
    """One ``$/progress`` on a token: a cancellable begin, reports, an end; none without a token.

    The client's Cancel button (``window/workDoneProgress/cancel``) calls ``cancel`` with the id
    given to ``begin``.
    """

    def __init__(
        self,
        ls: AgentLanguageServer,
        token: types.ProgressToken | None,
        cancel: Callable[[str], object],
    ) -> None:
        self._ls = ls
        self._token = token
        self._cancel = cancel
        self.begun = False

    def begin(
        self, cancel_id: str, title: str, message: str, percentage: int | None = None
    ) -> None:
        """Show the progress; its Cancel button cancels ``cancel_id``."""
        if self._token is None:
            return
        progress = self._ls.work_done_progress
        progress.begin(
            self._token,
            types.WorkDoneProgressBegin(
                title=title, cancellable=True, message=message, percentage=percentage
            ),
        )
        self.begun = True
        future = progress.tokens.get(self._token)
        if future is not None:
            future.add_done_callback(lambda f: f.cancelled() and self._cancel(cancel_id))

    def report(self, message: str | None, percentage: int | None = None) -> None:
        """A new message (and percentage) under the title, once begun."""
        if self.begun and self._token is not None:
            self._ls.work_done_progress.report(
                self._token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, message: str) -> None:
        """Close the progress, once begun."""
        if self.begun and self._token is not None:
            self._ls.work_done_progress.end(self._token, types.WorkDoneProgressEnd(message=message))
            self._ls.work_done_progress.tokens.pop(self._token, None)  # pygls never drops them


class RunProgress:
    """Observer of one run that reports to the client."""

    def __init__(
        self,
        ls: AgentLanguageServer,
        agent: str,
        task: str,
        token: types.ProgressToken | None,
        cancel: Callable[[str], object],
    ) -> None:
        self._ls = ls
        self._agent = agent
        self._task = task
        self._progress = _WorkDone(ls, token, cancel)
        self._tail = ""
        self.parent: str | None = None
        """The recipe this run is a step of (its notifications say so), or None."""
        self.step: str | None = None
        self.item: str | None = None

    def started(self, run_id: str) -> None:
        """The engine started the run (after any queueing)."""
        params: dict[str, Any] = {"id": run_id, "agent": self._agent, "task": self._task}
        if self.parent is not None:
            params.update(parent=self.parent, step=self.step, item=self.item)
        self._ls.protocol.notify(RUN_STARTED, params)
        self._progress.begin(run_id, f"agentls: {self._agent}", "running")

    def output(self, run_id: str, seq: int, text: str) -> None:
        """One output chunk, in order."""
        self._ls.protocol.notify(RUN_OUTPUT, {"id": run_id, "seq": seq, "text": text})
        if self._progress.begun:
            self._tail = (self._tail + text)[-REPORT_TAIL_CHARS:]
            self._progress.report(self._tail.strip() or None)

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        """A tool call started or ended; the progress report says what the agent is doing."""
        self._ls.protocol.notify(RUN_TOOL_CALL, {"id": run_id, **event})
        if event.get("status") == "started":
            self._progress.report(str(event.get("summary")))

    def finished(self, record: RunRecord) -> None:
        """The run ended (any status)."""
        self._progress.end(record.status)
        params: dict[str, Any] = {"id": record.id, "agent": record.agent, "status": record.status}
        if self.parent is not None:
            params.update(parent=self.parent, step=self.step, item=self.item)
        self._ls.protocol.notify(RUN_FINISHED, params)


async def progress_token(
    ls: AgentLanguageServer, client_token: types.ProgressToken | None
) -> types.ProgressToken | None:
    """The client's work-done token, or one created when the client supports them, or None."""
    if client_token is not None or not ls.supports_work_done_progress:
        return client_token
    candidate = f"agentls-run-{uuid.uuid4().hex}"
    try:
        await ls.work_done_progress.create_async(candidate)
    except Exception:  # progress is a nicety; the run goes on without it
        logger.warning("client refused a progress token; running without progress")
        return None
    return candidate


class RecipeProgress:
    """Observer of one recipe that reports to the client (``execution.recipes.RecipeObserver``).

    The recipe gets ``agentls/runStarted`` / ``runFinished`` of its own and one ``$/progress``
    ("3/7 steps · running: review, security"), whose Cancel button cancels the whole recipe. Each
    step's run sends the ordinary run notifications, with ``parent``, ``step`` and ``item``.
    """

    def __init__(
        self,
        ls: AgentLanguageServer,
        recipe: str,
        task: str,
        token: types.ProgressToken | None,
        cancel: Callable[[str], object],
    ) -> None:
        self._ls = ls
        self._recipe = recipe
        self._task = task
        self._cancel = cancel
        self._progress = _WorkDone(ls, token, cancel)

    def started(self, recipe_id: str) -> None:
        """The recipe began."""
        self._ls.protocol.notify(
            RUN_STARTED,
            {"id": recipe_id, "agent": self._recipe, "task": self._task, "kind": "recipe"},
        )
        self._progress.begin(recipe_id, f"agentls: {self._recipe}", "starting", percentage=0)

    def step(
        self, recipe_id: str, step: str, agent: str, task: str, item: str | None
    ) -> RunProgress:
        """The observer of one step's run: notifications only (the recipe owns the progress)."""
        child = RunProgress(self._ls, agent, task, None, self._cancel)
        child.parent, child.step, child.item = recipe_id, step, item
        return child

    def progress(self, recipe_id: str, done: int, total: int, running: Sequence[str]) -> None:
        """``3/7 steps · running: review, security``."""
        if not self._progress.begun:
            return
        message = f"{done}/{total} steps"
        if running:
            shown = ", ".join(running[:3]) + (", ..." if len(running) > 3 else "")
            message += f" · running: {shown}"
        self._progress.report(message, int(done * 100 / total) if total else 100)

    def finished(self, record: RunRecord) -> None:
        """The recipe ended."""
        self._progress.end(record.status)
        self._ls.protocol.notify(
            RUN_FINISHED,
            {"id": record.id, "agent": record.agent, "status": record.status, "kind": "recipe"},
        )
