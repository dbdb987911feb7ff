"""The ``workspace/executeCommand`` commands: decode, one service call, encode.

Every handler takes the raw arguments (``*args``: pygls would otherwise coerce them through type
annotations) and checks them with ``agentls.requests``. Service errors (``AgentlsError``) become
JSON-RPC errors with their user-safe message; anything else is logged and answered generically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from agentls import requests
from agentls.errors import AgentlsError
from agentls.lsp import actions
from agentls.lsp.documents import EditorBuffers, uri_to_path
from agentls.lsp.progress import RecipeProgress, RunProgress, progress_token
from agentls.lsp.protocol import CURRENT_COMMAND, AgentlsProtocol

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer
    from agentls.service import AgentService

logger = logging.getLogger(__name__)

AGENTS_LIST = "agentls.agents.list"
RUN = "agentls.run"
CONTEXT_PREVIEW = "agentls.context.preview"
RUNS_CANCEL = "agentls.runs.cancel"
STATUS = "agentls.status"
HISTORY_LIST = "agentls.history.list"
HISTORY_GET = "agentls.history.get"
METRICS = "agentls.metrics"
CACHE_CLEAR = "agentls.cache.clear"
EDITS_APPLY = "agentls.edits.apply"
EDITS_DISCARD = "agentls.edits.discard"
FINDINGS_CLEAR = "agentls.findings.clear"
MEMORY_PROFILE = "agentls.memory.profile"

SERVICE_WAIT_SECONDS = 30.0
"""A command sent right after ``initialized`` waits this long for the service to start."""

PROGRESS_CREATE_SECONDS = 5.0
"""How long a run waits for the client to accept a progress token before running without one:
a client that never answers ``window/workDoneProgress/create`` must not hang the request."""

Handler = Callable[["AgentLanguageServer", "AgentService", tuple[Any, ...]], Awaitable[Any]]


def _command(name: str, handler: Handler) -> Callable[..., Awaitable[Any]]:
    """Wrap a handler: wait for the service, link cancellation, map errors."""

    # No functools.wraps: pygls reads this signature (``ls`` by name, raw ``*args``), and the
    # annotations must not be strings it cannot resolve at run time.
    async def wrapper(ls: Any, *args: Any) -> Any:
        protocol = ls.protocol
        assert isinstance(protocol, AgentlsProtocol)
        protocol.link_cancellation()
        try:
            service = await ls.wait_for_service(SERVICE_WAIT_SECONDS)
            return await handler(ls, service, args)
        except AgentlsError as e:
            raise JsonRpcException(message=e.message, code=e.code) from None
        except (asyncio.CancelledError, JsonRpcException):
            raise
        except Exception:
            logger.exception("command %s failed", name)
            raise JsonRpcException(
                message=f"{name} failed: internal error; see the server log", code=-32803
            ) from None

    wrapper.__name__ = name.replace(".", "_")
    return wrapper


async def _agents_list(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    requests.parse_empty(requests.single_object(args, optional=True))
    return service.list_agents()


async def _run(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    run_args = requests.parse_run(requests.single_object(args))
    buffers = EditorBuffers(ls)
    if run_args.dry_run:
        return await service.run(run_args, buffers)
    if service.is_recipe(run_args.agent):
        observer = await recipe_progress(ls, service, run_args)
        return await service.run_recipe(run_args, buffers, observer)
    progress = await run_progress(ls, service, run_args)
    return await service.run(run_args, buffers, progress)


async def _request_token(ls: AgentLanguageServer) -> types.ProgressToken | None:
    """The work-done token of the current request: the client's, or one created for it, or None
    when the client supports none or does not answer ``window/workDoneProgress/create``."""
    ctx = CURRENT_COMMAND.get()
    client_token = ctx.params.work_done_token if ctx is not None else None
    try:
        return await asyncio.wait_for(progress_token(ls, client_token), PROGRESS_CREATE_SECONDS)
    except TimeoutError:
        logger.warning("the client did not answer window/workDoneProgress/create; no progress")
        return None


async def run_progress(
    ls: AgentLanguageServer, service: AgentService, run_args: requests.RunArgs
) -> RunProgress:
    """The progress reporter of a run."""
    token = await _request_token(ls)
    return RunProgress(ls, run_args.agent, run_args.task, token, service.cancel_run)


async def recipe_progress(
    ls: AgentLanguageServer, service: AgentService, run_args: requests.RunArgs
) -> RecipeProgress:
    """The progress reporter of a recipe: one ``$/progress`` for all its steps."""
    token = await _request_token(ls)
    return RecipeProgress(ls, run_args.agent, run_args.task, token, service.cancel_run)


async def _preview(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    run_args = requests.parse_run(requests.single_object(args), dry_run_allowed=False)
    return await service.preview(run_args, EditorBuffers(ls))


async def _cancel(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    return service.cancel(requests.parse_run_id(requests.single_object(args)))


async def _status(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    requests.parse_empty(requests.single_object(args, optional=True))
    return service.status()


async def _history_list(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    return service.history_list(
        requests.parse_history_list(requests.single_object(args, optional=True))
    )


async def _history_get(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    return service.history_get(requests.parse_run_id(requests.single_object(args)))


async def _metrics(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    requests.parse_empty(requests.single_object(args, optional=True))
    snapshot = service.metrics_snapshot()
    snapshot["transport"] = ls.transport_stats()
    return snapshot


async def _cache_clear(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    requests.parse_empty(requests.single_object(args, optional=True))
    return service.clear_cache()


async def _edits_apply(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    from agentls.lsp.edits import workspace_edit  # not needed to answer initialize

    parsed = requests.parse_edits_apply(requests.single_object(args))
    ws = ls.client_capabilities.workspace
    if ws is None or not ws.apply_edit:
        raise AgentlsError(
            "this editor does not accept workspace/applyEdit; apply the diff by hand"
        )
    buffers = EditorBuffers(ls)
    batch = await service.edits_to_apply(parsed, buffers)

    def version_of(uri: str) -> int | None:
        document = ls.workspace.text_documents.get(uri)
        return document.version if document is not None else None

    def editor_uri(uri: str) -> str:
        """An open file by the URI the editor knows it by (so its buffer is the one edited)."""
        path = uri_to_path(uri)
        return (buffers.uri_of(path) if path is not None else None) or uri

    ids = [str(e["id"]) for e in batch.edits]
    applied = False
    try:
        edits = [{**e, "uri": editor_uri(str(e["uri"]))} for e in batch.edits]
        edit = workspace_edit(
            batch.agent, edits, ls.client_capabilities, version_of, confirm=parsed.confirm
        )
        label = f"agentls: {batch.agent}"
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label)
        )
        applied = bool(result.applied)
    finally:
        service.edits_settled(batch.run_id, ids, "applied" if applied else None)
    answer: dict[str, Any] = {"applied": applied, "edits": ids}
    if result.failure_reason:
        answer["failure_reason"] = result.failure_reason
    return answer


async def _edits_discard(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    return service.edits_discard(requests.parse_run_id(requests.single_object(args)))


async def _findings_clear(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    parsed = requests.parse_findings_clear(requests.single_object(args, optional=True))
    return service.clear_findings(parsed.agent, parsed.uri)


async def _memory_profile(
    ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]
) -> Any:
    return await service.memory_profile(requests.parse_memory_profile(requests.single_object(args)))


COMMANDS: dict[str, Handler] = {
    AGENTS_LIST: _agents_list,
    RUN: _run,
    CONTEXT_PREVIEW: _preview,
    RUNS_CANCEL: _cancel,
    STATUS: _status,
    HISTORY_LIST: _history_list,
    HISTORY_GET: _history_get,
    METRICS: _metrics,
    CACHE_CLEAR: _cache_clear,
    EDITS_APPLY: _edits_apply,
    EDITS_DISCARD: _edits_discard,
    FINDINGS_CLEAR: _findings_clear,
    actions.ASK: actions.ask,
    MEMORY_PROFILE: _memory_profile,
}


def register(ls: AgentLanguageServer) -> None:
    """Register every command on the server (advertised in ``executeCommandProvider``)."""
    for name, handler in COMMANDS.items():
        ls.command(name)(_command(name, handler))
