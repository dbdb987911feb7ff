"""The tool loop: ask the model, run the tools it calls, answer them, ask again, until it answers.

It lives beside the engine, not inside a backend: a backend only translates its provider's wire
format to the common event stream (``TextDelta``, ``ToolCall``, ``Usage``, ``Stop``) and replays the
conversation so far (``BackendRequest.transcript``); the loop owns the conversation, the limits and
the tools' execution. The engine owns the run: it gives the loop a ``LoopSink`` for text, usage and
the trace, and applies the run's timeout and cancellation around the whole loop (a cancellation
at any await ends the loop; what was said and done so far stays in the sink).

Bounds: ``max_turns`` model calls (still calling tools after that fails the run, with the output
kept); ``max_tool_calls`` calls per run (later ones are answered with a refusal, so the model
answers with what it has); the context budget (``budget_bytes``): tool results count against what
is left of ``max_context_tokens`` after the prompt, and a result that does not fit is cut, or
refused once nothing is left.

Calls of one turn run concurrently when they only read (``read_file``, ``list_files``,
``search``); ``propose_edit`` calls run one after the other, in the model's order, since each one
is checked against the edits before it. Results go back in the order the model made the calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agentls.backends.base import (
    AssistantTurn,
    Backend,
    BackendError,
    BackendRequest,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolsUnsupported,
    Usage,
)
from agentls.context.tokens import estimate_tokens
from agentls.tools.toolbox import PROPOSE_EDIT, Toolbox, ToolOutcome

logger = logging.getLogger(__name__)

MIN_RESULT_BYTES = 256
"""A tool result that would be cut below this is refused instead (the budget is used up)."""


@dataclass(frozen=True)
class ToolPlan:
    """What a tool-using run needs besides its request, decided before it starts."""

    toolbox: Toolbox
    max_turns: int
    max_tool_calls: int
    budget_bytes: int
    """Bytes of tool results that still fit the context budget after the prompt."""
    bytes_per_token: float
    on_tools_unsupported: Callable[[], None] = lambda: None
    """Called when the provider says the model cannot call tools (the service remembers it)."""


class LoopSink(Protocol):
    """Where the loop reports (the engine's run)."""

    def text(self, text: str) -> bool:
        """A piece of answer text; False when the output is full (the loop stops)."""
        ...

    def usage(self, usage: Usage) -> None:
        """A usage report of the current turn."""
        ...

    def turn_started(self) -> None:
        """A model call begins."""
        ...

    def tool_started(self, call: ToolCall, summary: str) -> None:
        """A tool call begins."""
        ...

    def tool_finished(self, call: ToolCall, trace: dict[str, Any], outcome: ToolOutcome) -> None:
        """A tool call ended; ``trace`` is its entry in the run's ``tool_calls``."""
        ...

    def note(self, text: str) -> None:
        """Something the user should know about how the run went (not an error)."""
        ...


async def run_loop(
    backend: Backend, request: BackendRequest, plan: ToolPlan, sink: LoopSink
) -> None:
    """Converse until the model answers without calling tools.

    Raises:
        BackendError: the provider failed, or the model was still calling tools after
            ``max_turns`` turns.
    """
    toolbox = plan.toolbox
    request = dataclasses.replace(request, tools=toolbox.specs)
    calls_made = 0
    budget = plan.budget_bytes
    seen_ids: set[str] = set()
    for turn in range(1, plan.max_turns + 1):
        sink.turn_started()
        try:
            text, calls, full = await _turn(backend, request, sink)
        except ToolsUnsupported:
            if turn > 1 or not request.tools:
                raise
            plan.on_tools_unsupported()
            sink.note(
                f"the model does not support tools (backend {backend.name!r}); ran single-shot "
                "without them"
            )
            request = dataclasses.replace(request, tools=())
            text, calls, full = await _turn(backend, request, sink)
        if full or not calls or not request.tools:
            return
        calls = _unique_ids(calls, seen_ids, turn)
        results: list[ToolResult] = []
        outcomes = await _execute(plan, calls, calls_made, sink)
        calls_made += len(calls)
        for call, outcome in zip(calls, outcomes, strict=True):
            content = outcome.content
            size = len(content.encode("utf-8", "replace"))
            if outcome.status == "succeeded" and size > budget:
                if budget < MIN_RESULT_BYTES:
                    content = (
                        "error: the context budget is used up; answer with what you have "
                        "without calling more tools"
                    )
                else:
                    cut = content.encode("utf-8", "replace")[: budget - 120]
                    content = (
                        cut.decode("utf-8", "ignore") + "\n[cut: the context budget is used up]\n"
                    )
            budget -= len(content.encode("utf-8", "replace"))
            budget = max(budget, 0)
            results.append(
                ToolResult(call.call_id, call.name, content, outcome.status != "succeeded")
            )
        request = dataclasses.replace(
            request,
            transcript=(*request.transcript, AssistantTurn(text, tuple(calls)), *results),
        )
    raise BackendError(
        f"stopped after max_turns = {plan.max_turns} turns: the model was still calling tools "
        "(raise max_turns in the agent or limits.max_turns)"
    )


def _unique_ids(calls: list[ToolCall], seen: set[str], turn: int) -> list[ToolCall]:
    """The calls with ids unique over the run (some servers number calls afresh each turn)."""
    out = []
    for n, call in enumerate(calls, start=1):
        call_id = call.call_id
        if call_id in seen:
            call_id = f"{call_id}_t{turn}_{n}"
            call = dataclasses.replace(call, call_id=call_id)
        seen.add(call_id)
        out.append(call)
    return out


async def _turn(
    backend: Backend, request: BackendRequest, sink: LoopSink
) -> tuple[str, list[ToolCall], bool]:
    """One model call: its text, the tools it called, and whether the output is full."""
    parts: list[str] = []
    calls: list[ToolCall] = []
    stream = backend.stream(request)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                parts.append(event.text)
                if not sink.text(event.text):
                    return "".join(parts), calls, True
            elif isinstance(event, Usage):
                sink.usage(event)
            elif isinstance(event, ToolCall):
                calls.append(event)
    finally:
        await _close(stream)
    return "".join(parts), calls, False


async def _execute(
    plan: ToolPlan, calls: list[ToolCall], made: int, sink: LoopSink
) -> list[ToolOutcome]:
    """Run one turn's calls: reads concurrently, edits in order; results in the calls' order."""
    toolbox = plan.toolbox
    outcomes: dict[int, ToolOutcome] = {}
    done: set[int] = set()
    reads: list[tuple[int, ToolCall]] = []
    edits: list[tuple[int, ToolCall]] = []
    for i, call in enumerate(calls):
        if made + i >= plan.max_tool_calls:
            outcomes[i] = ToolOutcome(
                "refused",
                f"error: the limit of {plan.max_tool_calls} tool calls per run is reached; "
                "answer with what you have",
                f"refused: tool call limit ({plan.max_tool_calls}) reached",
            )
        else:
            (edits if call.name == PROPOSE_EDIT else reads).append((i, call))

    for _, call in sorted(reads + edits, key=lambda pair: pair[0]):  # the model's order
        sink.tool_started(call, toolbox.describe(call))

    async def run(i: int, call: ToolCall) -> None:
        began = time.monotonic()
        try:
            outcome = await toolbox.call(call)
        except Exception:
            logger.exception("tool %s failed", call.name)
            outcome = ToolOutcome("failed", "error: the tool failed", f"{call.name} failed")
        outcomes[i] = outcome
        done.add(i)
        _report(plan, call, outcome, time.monotonic() - began, sink)

    if reads:
        await asyncio.gather(*(run(i, call) for i, call in reads))
    for i, call in edits:
        await run(i, call)
    for i, call in enumerate(calls):
        if i not in done:
            _report(plan, call, outcomes[i], 0.0, sink, started=False)
    return [outcomes[i] for i in range(len(calls))]


def _report(
    plan: ToolPlan,
    call: ToolCall,
    outcome: ToolOutcome,
    seconds: float,
    sink: LoopSink,
    *,
    started: bool = True,
) -> None:
    for read in outcome.reads:
        read["tokens"] = estimate_tokens(read["bytes"], plan.bytes_per_token)
    trace = {
        "call_id": call.call_id,
        "tool": call.name,
        "arguments": plan.toolbox.trace_arguments(call),
        "status": outcome.status,
        "summary": outcome.summary,
        "duration_ms": round(seconds * 1000, 3),
    }
    if not started:
        sink.tool_started(call, outcome.summary)
    sink.tool_finished(call, trace, outcome)


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
