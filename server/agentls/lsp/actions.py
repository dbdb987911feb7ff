"""Agents as code actions and code lenses, and how a run started from them is shown.

``textDocument/codeAction`` on a workspace file lists ``Ask <agent>: <description>`` for each valid
agent that takes the selection or the active file (kind ``refactor.agentls``), plus a ``quickfix``
for each finding with a ``fix`` that touches the range. ``textDocument/codeLens`` on a definition
file shows ``▶ Run`` and ``Context: N files, ~T tokens`` (a cached summary, recomputed in the
background when the workspace changes, then ``workspace/codeLens/refresh`` when the client
supports it). Both are answered from memory: the registry, the findings store, open buffers and the
context cache; no disk reads, no backend. The service's modules (``agentls.findings`` and what it
pulls in) are imported inside the functions: this module loads before ``initialize`` is answered.

Their commands go to ``agentls.ask``, which runs the agent (or previews its context) and shows the
result: findings become diagnostics through the run itself, text goes into a Markdown document in
the data folder that the editor opens with ``window/showDocument`` (else the path is logged with
``window/logMessage`` and announced with ``window/showMessage``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from agentls import requests
from agentls.lsp.documents import EditorBuffers, uri_to_path

if TYPE_CHECKING:
    from agentls.findings import Finding
    from agentls.lsp.server import AgentLanguageServer
    from agentls.service import AgentService

logger = logging.getLogger(__name__)

ASK = "agentls.ask"

ASK_KIND = "refactor.agentls"
"""The kind of ``Ask <agent>`` actions. Under ``refactor`` so that a client asking only for quick
fixes (VS Code's lightbulb on an error) does not list agents, while the generic code-action menus
(VS Code's Ctrl+. / Refactor..., Neovim's ``vim.lsp.buf.code_action()``, Helix's ``space a``,
Emacs' ``eglot-code-actions``) show it without configuration."""

ACTION_KINDS: list[types.CodeActionKind | str] = [types.CodeActionKind.QuickFix, ASK_KIND]

LENS_REFRESH_DELAY = 0.3
"""Seconds to gather workspace changes before recomputing lens summaries (a checkout is a storm)."""


def _supports_literals(ls: AgentLanguageServer) -> bool:
    text_document = ls.client_capabilities.text_document
    action = text_document.code_action if text_document else None
    return bool(action and action.code_action_literal_support)


def _overlaps(finding: Finding, rng: types.Range) -> bool:
    """Whether a finding's lines meet the requested range (lines are enough for a quick fix)."""
    end_line = finding.end_line if finding.end_line is not None else finding.line
    return not (end_line < rng.start.line or finding.line > rng.end.line)


def _document_text(ls: AgentLanguageServer, service: AgentService, uri: str) -> str | None:
    """The text of a file from memory: the open buffer, else the context cache; never the disk."""
    document = ls.workspace.text_documents.get(uri)
    if document is not None:
        source: str = document.source
        return source
    path = uri_to_path(uri)
    item = service.cache.get(path) if path is not None else None
    if item is None:
        return None
    try:
        return item.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _position(codec: Any, lines: Sequence[str], line: int, column: int) -> dict[str, int]:
    p = codec.position_to_client_units(lines, types.Position(line=line, character=column))
    return {"line": p.line, "character": p.character}


def _quick_fixes(
    ls: AgentLanguageServer, service: AgentService, uri: str, rng: types.Range
) -> list[dict[str, Any]]:
    from agentls.findings import locate_fix

    path = uri_to_path(uri)
    if path is None:
        return []
    candidates = [f for f in service.findings_for(path) if f.fix is not None and _overlaps(f, rng)]
    if not candidates:
        return []
    text = _document_text(ls, service, uri)
    if text is None:
        return []
    document = ls.workspace.text_documents.get(uri)
    lines = document.lines if document is not None else text.splitlines(True)
    codec = ls.workspace.position_codec
    actions = []
    for finding in candidates:
        where = locate_fix(text, finding)
        if where is None or finding.fix is None:
            continue
        line, col, end_line, end_col = where
        edit = {
            "range": {
                "start": _position(codec, lines, line, col),
                "end": _position(codec, lines, end_line, end_col),
            },
            "newText": finding.fix.new_text,
        }
        actions.append(
            {
                "title": f"Fix ({finding.agent}): {finding.message.splitlines()[0][:80]}",
                "kind": types.CodeActionKind.QuickFix.value,
                "isPreferred": True,
                "edit": {"changes": {uri: [edit]}},
            }
        )
    return actions


def code_actions(
    ls: AgentLanguageServer, params: types.CodeActionParams
) -> list[dict[str, Any]] | None:
    """``textDocument/codeAction``: quick fixes from findings, then one ``Ask`` per agent.

    Answered as plain JSON: with 200 agents, building and converting lsprotocol objects was most
    of the request's cost.
    """
    service = ls.service
    if service is None:
        return None
    uri = params.text_document.uri
    path = uri_to_path(uri)
    if path is None or service.roots.folder_of(path) is None:
        return []
    only = params.context.only
    wants_fix = not only or any(types.CodeActionKind.QuickFix.value.startswith(k) for k in only)
    wants_ask = not only or any(ASK_KIND.startswith(k) for k in only)
    literals = _supports_literals(ls)
    out: list[dict[str, Any]] = []
    if wants_fix and literals:
        out.extend(_quick_fixes(ls, service, uri, params.range))
    if wants_ask:
        rng = params.range
        range_arg = {
            "start": {"line": rng.start.line, "character": rng.start.character},
            "end": {"line": rng.end.line, "character": rng.end.character},
        }
        for agent in service.code_action_agents():
            title = f"Ask {agent.name}: {agent.description or agent.task or 'run on this code'}"
            command = {
                "title": title,
                "command": ASK,
                "arguments": [{"agent": agent.name, "uri": uri, "range": range_arg}],
            }
            action = {"title": title, "kind": ASK_KIND, "command": command}
            out.append(action if literals else command)
    return out


def code_lenses(ls: AgentLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    """``textDocument/codeLens`` on a definition file: run it, and the size of its context."""
    service = ls.service
    path = uri_to_path(params.text_document.uri)
    if service is None or path is None:
        return []
    entry = next((e for e in service.registry.agents() if e.source == path), None)
    if entry is None:
        return []
    top = types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
    )
    if not entry.valid:
        return [
            types.CodeLens(
                range=top,
                command=types.Command(title=f"{entry.name}: fix the errors to run it", command=""),
            )
        ]
    run = types.CodeLens(
        range=top,
        command=types.Command(title="▶ Run", command=ASK, arguments=[{"agent": entry.name}]),
    )
    if entry.definition is not None and entry.definition.is_recipe:
        steps = entry.definition.steps
        fan_out = sum(1 for s in steps if s.for_each)
        title = f"Recipe: {len(steps)} steps" + (f", {fan_out} over files" if fan_out else "")
        return [run, types.CodeLens(range=top, command=types.Command(title=title, command=""))]
    summary, fresh = service.context_summary(entry.name)
    if not fresh:
        lens_refresher(ls).want(entry.name)
    if summary is None:
        context_title = "Context: computing…"
    else:
        context_title = f"Context: {summary.files} files, ~{summary.tokens} tokens"
    return [
        run,
        types.CodeLens(
            range=top,
            command=types.Command(
                title=context_title, command=ASK, arguments=[{"agent": entry.name, "preview": True}]
            ),
        ),
    ]


class LensRefresher:
    """Recomputes lens summaries in the background and asks the client to redraw its lenses."""

    def __init__(self, ls: AgentLanguageServer) -> None:
        self._ls = ls
        self._wanted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def want(self, agent: str) -> None:
        """An editor showed this agent's lens with a stale summary: recompute it soon."""
        self._wanted.add(agent)
        self._schedule()

    def workspace_changed(self) -> None:
        """Contexts may have changed: recompute the summaries editors have been shown."""
        service = self._ls.service
        if service is None or not service.summaries.agents():
            return
        self._wanted.update(service.summaries.agents())
        self._schedule()

    def _schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
            self._ls._background(self._task)

    async def _run(self) -> None:
        # Loops until nothing is wanted: changes that arrive while summaries are being computed
        # add to ``_wanted`` without starting a second task.
        while self._wanted:
            await asyncio.sleep(LENS_REFRESH_DELAY)
            service = self._ls.service
            if service is None:
                return
            wanted, self._wanted = sorted(self._wanted), set()
            changed = await service.refresh_summaries(wanted, EditorBuffers(self._ls))
            if changed and _supports_lens_refresh(self._ls):
                try:
                    await asyncio.wait_for(self._ls.workspace_code_lens_refresh_async(None), 5.0)
                except Exception:  # a client that cannot refresh asks again on its own schedule
                    logger.debug("workspace/codeLens/refresh failed", exc_info=True)


def _supports_lens_refresh(ls: AgentLanguageServer) -> bool:
    workspace = ls.client_capabilities.workspace
    lens = workspace.code_lens if workspace else None
    return bool(lens and lens.refresh_support)


def lens_refresher(ls: AgentLanguageServer) -> LensRefresher:
    """The server's one refresher (made on first use)."""
    if ls.lens_refresher is None:
        ls.lens_refresher = LensRefresher(ls)
    return ls.lens_refresher


def _supports_show_document(ls: AgentLanguageServer) -> bool:
    window = ls.client_capabilities.window
    return bool(window and window.show_document and window.show_document.support)


async def show_document(ls: AgentLanguageServer, uri: str, summary: str) -> bool:
    """Open a result document in the editor; else log its path and say where it is."""
    if _supports_show_document(ls):
        try:
            result = await asyncio.wait_for(
                ls.window_show_document_async(types.ShowDocumentParams(uri=uri, take_focus=True)),
                10.0,
            )
            if result.success:
                return True
        except Exception:  # fall back to telling the user where the file is
            logger.debug("window/showDocument failed", exc_info=True)
    ls.window_log_message(
        types.LogMessageParams(type=types.MessageType.Info, message=f"{summary}: {uri}")
    )
    ls.window_show_message(
        types.ShowMessageParams(type=types.MessageType.Info, message=f"{summary}: {uri}")
    )
    return False


async def ask(ls: AgentLanguageServer, service: AgentService, args: tuple[Any, ...]) -> Any:
    """``agentls.ask``: run an agent (or preview its context) and show the result in the editor."""
    from agentls.lsp.commands import recipe_progress, run_progress  # commands imports this

    parsed = requests.parse_ask(requests.single_object(args))
    agent = service.registry.get(parsed.run.agent)
    run_args = parsed.run if parsed.task_given else replace(parsed.run, task=agent.task)
    buffers = EditorBuffers(ls)
    if parsed.preview:
        preview = await service.preview(run_args, buffers)
        path = await service.write_preview(agent.name, preview)
        uri = path.as_uri()
        shown = await show_document(ls, uri, f"{agent.name}: context preview")
        return {"agent": agent.name, "document": uri, "shown": shown}
    if agent.is_recipe:  # a code lens runs it: one progress for all its steps
        observer = await recipe_progress(ls, service, run_args)
        result = await service.run_recipe(run_args, buffers, observer)
    else:
        progress = await run_progress(ls, service, run_args)
        result = await service.run(run_args, buffers, progress)
    # Hook for proposed edits (tools branch): apply result["edits"] through agentls.edits.apply
    # (workspace/applyEdit with confirmation annotations) here, before showing the text.
    findings = result.get("findings")
    if result.get("status") != "succeeded":
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Error,
                message=f"{agent.name}: {result.get('status')}: {result.get('error') or '-'}",
            )
        )
    elif findings is not None and not _has_text_beyond_findings(result):
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Info,
                message=f"{agent.name}: {len(findings)} findings"
                + (
                    f" ({result.get('findings_dropped')} dropped)"
                    if result.get("findings_dropped")
                    else ""
                ),
            )
        )
        return {**result, "document": None, "shown": False}
    path = await service.write_result(result)
    uri = path.as_uri()
    shown = await show_document(ls, uri, f"{agent.name}: {result.get('status')}")
    return {**result, "document": uri, "shown": shown}


def _has_text_beyond_findings(result: dict[str, Any]) -> bool:
    """A diagnostics run whose output is only finding lines needs no document."""
    from agentls.findings import JSON_PREFIX, is_finding_line

    for line in str(result.get("output") or "").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(JSON_PREFIX) and not is_finding_line(stripped):
            return True
    return False
