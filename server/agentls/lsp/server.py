"""The language server: lifecycle, configuration, document and file events, composed in one place.

``create_server()`` builds an ``AgentLanguageServer`` and registers every handler. The server
answers ``initialize`` before touching the workspace; on ``initialized`` it pulls the client's
configuration, builds the ``AgentService`` and starts it in the background. Handlers here are
adapters: they translate LSP events into service calls.

Start-up: ``initialize`` is answered with pygls, lsprotocol and the LSP layer loaded, nothing
more. Just after the answer is written, a worker thread imports the service and everything
under it (the configuration, YAML, the builder, the index, pathspec, httpx, SQLite...) while the
loop stays free, and ``initialized`` waits for that import before it builds the service. An
editor waits for the ``initialize`` answer before it does anything; ``tests/quality`` keeps the
list of what that answer costs honest.

Ending: ``shutdown`` answers within ``SHUTDOWN_SECONDS`` whatever the runs do (their cleanup goes
on in the background); ``aclose`` is the transport's last call on every way out (``exit``, end of
input, a dead client, a signal) and makes sure runs are cancelled and the history closed. Errors
in notification handlers never reach the user as exception text (``report_server_error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException
from pygls.lsp.server import LanguageServer

from agentls import __version__
from agentls.errors import REQUEST_FAILED
from agentls.lsp import actions, agent_files, commands
from agentls.lsp.documents import (
    EditorBuffers,
    open_text,
    publish_ignored_settings,
    publish_problems,
    uri_to_path,
)
from agentls.lsp.protocol import AgentlsProtocol

if TYPE_CHECKING:
    from agentls.config import Settings
    from agentls.service import AgentService

logger = logging.getLogger(__name__)

CONFIG_SECTION = "agentls"

SHUTDOWN_SECONDS = 0.8
"""``shutdown`` is answered after at most this long; LSP clients wait ~1 s before killing us."""

FEATURE_WAIT_SECONDS = 10.0
"""How long a language feature waits for the service to start before answering without it."""

ERROR_POPUP_INTERVAL = 600.0
"""At most one "internal error" pop-up per this many seconds: one tells the user, more nag."""

NOTIFICATION_ERROR_MESSAGE = (
    "agentls hit an internal error while handling an editor notification; "
    "details are in the server log."
)


class AgentLanguageServer(LanguageServer):
    """pygls' server plus the agentls session it adapts."""

    def __init__(self) -> None:
        super().__init__(
            "agentls",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=AgentlsProtocol,
        )
        self.init_options: dict[str, Any] = {}
        """``initializationOptions`` as the client sent them (pygls does not keep them)."""
        self.client_config: dict[str, Any] = {}
        """The last ``workspace/configuration`` answer for the ``agentls`` section."""
        self.service: AgentService | None = None
        """The session; None until ``initialized`` has been handled."""
        self._service_ready = asyncio.Event()
        self._start_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        """Strong references to fire-and-forget work (asyncio keeps only weak ones)."""
        self._closing: asyncio.Task[None] | None = None
        """The service's shutdown, once started (it may outlive the ``shutdown`` request)."""
        self._parent_watch: asyncio.Task[None] | None = None
        self._service_import: asyncio.Future[Any] | None = None
        """The import of ``agentls.service`` in a worker thread, started after ``initialize``."""
        self._last_popup = -ERROR_POPUP_INTERVAL
        self.lens_refresher: actions.LensRefresher | None = None
        """Recomputes code-lens summaries after workspace changes (made on first use)."""
        self.over_tcp = False
        """Set by ``agentls serve --tcp``: the client is a TCP peer, not necessarily the editor."""
        self.tcp_token: str | None = None
        """``AGENTLS_TCP_TOKEN`` when the server was started with one."""
        self.client_authenticated = True
        """False for a TCP peer that did not present the token: its settings may not define
        backends or declare trust (decided at ``initialize``)."""
        self.config_diagnostics: dict[Path, list[types.Diagnostic]] = {}
        """The ignored-key warnings of each ``agentls.toml`` (``publish_ignored_settings``), kept
        so that every publish for that file carries them beside its findings."""

    @property
    def lsp(self) -> AgentlsProtocol:
        """The protocol, typed as ours."""
        protocol = self.protocol
        assert isinstance(protocol, AgentlsProtocol)
        return protocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Log an unexpected error; tell the user only that there was one, never its text.

        Request errors are already in their response. Exception text can carry paths, file
        contents or secrets, so a pop-up says only where to look (and rarely: see
        ``ERROR_POPUP_INTERVAL``); the log line goes through the redaction filter.
        """
        if source is FeatureRequestError:
            return
        logger.error("error in a notification handler", exc_info=error)
        now = time.monotonic()
        if now - self._last_popup < ERROR_POPUP_INTERVAL:
            return
        self._last_popup = now
        self.window_show_message(
            types.ShowMessageParams(
                message=NOTIFICATION_ERROR_MESSAGE, type=types.MessageType.Error
            )
        )

    def after_initialize(self, pid: int | None) -> None:
        """Once the ``initialize`` answer is out: import the service off the loop, watch the client.

        The import takes 100-300 ms (YAML alone ~75 ms); on the loop it would hold every
        request for that long, in a thread it overlaps the client's own work after the answer.
        """
        self.import_service()
        self.watch_client_process(pid)

    def import_service(self) -> asyncio.Future[Any]:
        """The (shared) import of ``agentls.service`` in a worker thread."""
        if self._service_import is None:
            self._service_import = asyncio.ensure_future(
                asyncio.to_thread(importlib.import_module, "agentls.service")
            )
        return self._service_import

    def watch_client_process(self, pid: int | None) -> None:
        """End the session when the client process (``initialize``'s ``processId``) dies."""
        if pid is None or self._parent_watch is not None:
            return
        from agentls.parent_watch import watch_parent  # psutil: not needed for the answer

        lifecycle = self.lsp.lifecycle
        self._parent_watch = asyncio.ensure_future(
            watch_parent(pid, lambda: lifecycle.request_exit(1, f"client process {pid} is gone"))
        )
        self._background(self._parent_watch)

    async def shutdown_service(self) -> None:
        """Stop the start-up, cancel runs, close the service; answer within ``SHUTDOWN_SECONDS``.

        What does not finish in time goes on in the background; ``aclose`` waits for it.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_service())
        done, _ = await asyncio.wait({self._closing}, timeout=SHUTDOWN_SECONDS)
        if not done:
            logger.warning("shutdown: runs are still stopping; answering now")

    async def _close_service(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._start_task
        if self.service is not None:
            await self.service.shutdown()

    async def aclose(self) -> None:
        """The session is over (any way): cancel runs, close history and backends, stop watching."""
        if self._parent_watch is not None:
            self._parent_watch.cancel()
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_service())
        await asyncio.shield(self._closing)

    @property
    def supports_work_done_progress(self) -> bool:
        """Whether the client accepts server-created progress tokens."""
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    @property
    def supports_configuration(self) -> bool:
        """Whether the client answers ``workspace/configuration``."""
        ws = self.client_capabilities.workspace
        return bool(ws and ws.configuration)

    async def wait_for_service(self, wait_seconds: float) -> AgentService:
        """The started service; waits for ``initialized`` to finish starting it.

        Without ``initialized`` there is nothing to wait for: messages arrive in order, so a
        command that comes before it was sent by a client that skipped it.
        """
        if self._start_task is None:
            from agentls.errors import AgentlsError

            raise AgentlsError("agentls is not ready: the client has not sent 'initialized'")
        if self.service is None or not self._service_ready.is_set():
            try:
                await asyncio.wait_for(self._service_ready.wait(), wait_seconds)
            except TimeoutError:
                from agentls.errors import AgentlsError

                raise AgentlsError("agentls is still starting; try again") from None
        assert self.service is not None
        return self.service

    async def service_for_feature(self) -> AgentService | None:
        """The service for a language feature: waits for start-up, None when there is none.

        A request sent right after ``initialized`` (an editor restoring its open files) is
        answered once the agents are loaded rather than with an empty answer.
        """
        if self._start_task is None:
            return None
        try:
            await asyncio.wait_for(self._service_ready.wait(), FEATURE_WAIT_SECONDS)
        except TimeoutError:
            return None
        return self.service

    def transport_stats(self) -> dict[str, Any]:
        """Bookkeeping sizes inside pygls, so leaks show up in ``agentls.metrics``."""
        return {
            "pending_requests": len(self.protocol._request_futures),
            "progress_tokens": len(self.work_done_progress.tokens),
        }

    def folders(self) -> list[Path]:
        """The workspace folders as realpaths (the root URI when the client sent no folders)."""
        paths: list[Path] = []
        for folder in self.workspace.folders.values():
            path = uri_to_path(folder.uri)
            if path is not None:
                paths.append(path)
        if not paths and self.workspace.root_uri:
            root = uri_to_path(self.workspace.root_uri)
            if root is not None:
                paths.append(root)
        return paths

    async def pull_client_config(self) -> None:
        """Ask the client for the ``agentls`` section (when it can answer)."""
        if not self.supports_configuration:
            return
        try:
            values = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(
                        items=[types.ConfigurationItem(section=CONFIG_SECTION)]
                    )
                ),
                5.0,
            )
        except Exception:  # a client that cannot answer leaves the other layers in force
            logger.warning("workspace/configuration failed; using the other configuration layers")
            return
        value = values[0] if values else None
        self.client_config = value if isinstance(value, dict) else {}

    def current_settings(self) -> Settings:
        """Merge every configuration layer now."""
        from agentls.config import load_settings

        return load_settings(
            self.folders(),
            self.init_options,
            self.client_config,
            client_trusted=self.client_authenticated,
        )

    def accept_client(self, params: types.InitializeParams) -> None:
        """Decide at ``initialize`` whether this session may run, and how far the client is trusted.

        Refuses (an error answer, then exit code 3) when the running agentls package lies inside
        a workspace folder: the repository may have supplied the server's code. A TCP client is
        authenticated only by presenting ``AGENTLS_TCP_TOKEN`` (compared in constant time).
        """
        import hmac

        from agentls.provenance import REFUSED_EXIT_CODE, inside_folders

        options = params.initialization_options
        self.init_options = dict(options) if isinstance(options, dict) else {}
        token = self.init_options.pop("token", None)
        folders = [
            p for f in params.workspace_folders or [] if (p := uri_to_path(f.uri)) is not None
        ]
        if not folders and params.root_uri and (root := uri_to_path(params.root_uri)):
            folders.append(root)
        refusal = inside_folders(folders)
        if refusal is not None:
            logger.error("%s", refusal)
            lifecycle = self.lsp.lifecycle
            asyncio.get_running_loop().call_soon(
                lifecycle.request_exit, REFUSED_EXIT_CODE, "the package is inside the workspace"
            )
            raise JsonRpcException(message=refusal, code=REQUEST_FAILED)
        if self.over_tcp:
            self.client_authenticated = (
                self.tcp_token is not None
                and isinstance(token, str)
                and hmac.compare_digest(token.encode(), self.tcp_token.encode())
            )
            if not self.client_authenticated:
                logger.warning(
                    "TCP client not authenticated (no or wrong initializationOptions.token): "
                    "its settings cannot define backends or declare trust"
                )

    def publish_config_problems(self, settings: Settings) -> None:
        """Warnings on each ``agentls.toml`` whose keys were ignored; cleared when none are left."""
        publish_ignored_settings(self, settings.ignored)

    async def start_service(self) -> None:
        """Build and start the session (called once, after ``initialized``)."""
        await self.import_service()
        from agentls.service import AgentService  # loaded by now: see the module docstring

        await self.pull_client_config()
        settings = self.current_settings()
        logging.getLogger("agentls").setLevel(settings.log_level)
        for problem in settings.problems:
            logger.warning("configuration: %s", problem)
        for item in settings.ignored:
            logger.warning("configuration: %s", item)
        self.publish_config_problems(settings)
        from agentls.backends.descendants import watch_orphans

        watch_orphans(asyncio.get_running_loop())
        service = AgentService(settings, self.folders())
        buffers = EditorBuffers(self)
        # The first diagnostics (every definition file) go out after the commands that waited
        # for the service: an editor's first agents.list must not queue behind 1,000 of them.
        first: set[Path] = set()
        service.on_problems_changed = first.update
        service.on_findings_changed = first.update
        service.on_context_changed = lambda: actions.lens_refresher(self).workspace_changed()
        service.on_config_file_changed = self.reload_settings_soon
        service.is_open_in_editor = buffers.is_open
        self.service = service
        try:
            await service.start()
        finally:
            self._service_ready.set()
            service.on_problems_changed = lambda paths: publish_problems(self, paths)
            service.on_findings_changed = lambda paths: publish_problems(self, paths)
            asyncio.get_running_loop().call_soon(publish_problems, self, first)
        logger.info("agentls %s serving %s", __version__, [str(f) for f in service.roots.folders])

    def reload_settings_soon(self) -> None:
        """Re-read every layer in the background (config file or client settings changed)."""
        task = asyncio.ensure_future(self._reload_settings())
        self._background(task)

    async def _reload_settings(self) -> None:
        await self.pull_client_config()
        if self.service is not None:
            settings = self.current_settings()
            self.service.update_settings(settings)
            self.publish_config_problems(settings)

    def _background(self, task: asyncio.Future[Any]) -> None:
        """Keep a strong reference and log failures of fire-and-forget work."""
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("background task failed", exc_info=t.exception())

        task.add_done_callback(done)


def create_server() -> AgentLanguageServer:
    """Build the server and register every handler."""
    ls = AgentLanguageServer()
    commands.register(ls)

    @ls.feature(types.INITIALIZE)
    def on_initialize(ls: AgentLanguageServer, params: types.InitializeParams) -> None:
        ls.accept_client(params)
        # The answer is written as this handler returns; what the answer does not need waits.
        asyncio.get_running_loop().call_soon(ls.after_initialize, params.process_id)

    @ls.feature(types.INITIALIZED)
    def on_initialized(ls: AgentLanguageServer, params: types.InitializedParams) -> None:
        ls._start_task = asyncio.ensure_future(ls.start_service())
        ls._background(ls._start_task)

    @ls.feature(types.SHUTDOWN)
    async def on_shutdown(ls: AgentLanguageServer, params: Any) -> None:
        await ls.shutdown_service()

    @ls.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def on_folders(
        ls: AgentLanguageServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        from agentls.provenance import REFUSED_EXIT_CODE, inside_folders

        refusal = inside_folders(ls.folders())
        if refusal is not None:
            logger.error("%s", refusal)
            ls.lsp.lifecycle.request_exit(REFUSED_EXIT_CODE, "the package is inside the workspace")
            return
        if ls.service is not None:
            await ls.service.set_folders(ls.folders())

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(
        ls: AgentLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get(CONFIG_SECTION), dict):
            ls.client_config = settings[CONFIG_SECTION]
        ls.reload_settings_soon()

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(ls: AgentLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        _buffer_changed(ls, params.text_document.uri, open_=True)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(ls: AgentLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        _buffer_changed(ls, params.text_document.uri, open_=True)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(ls: AgentLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        _buffer_changed(ls, params.text_document.uri, open_=False)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def on_save(ls: AgentLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        path = uri_to_path(params.text_document.uri)
        if ls.service is not None and path is not None:
            ls.service.files_changed({path})

    @ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=actions.ACTION_KINDS),
    )
    async def on_code_action(
        ls: AgentLanguageServer, params: types.CodeActionParams
    ) -> list[dict[str, Any]] | None:
        await ls.service_for_feature()
        return actions.code_actions(ls, params)

    @ls.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def on_code_lens(
        ls: AgentLanguageServer, params: types.CodeLensParams
    ) -> list[types.CodeLens]:
        await ls.service_for_feature()
        return actions.code_lenses(ls, params)

    @ls.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=agent_files.TRIGGER_CHARACTERS),
    )
    async def on_completion(
        ls: AgentLanguageServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        await ls.service_for_feature()
        return agent_files.completion(ls, params)

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: AgentLanguageServer, params: types.HoverParams) -> types.Hover | None:
        await ls.service_for_feature()
        return agent_files.hover(ls, params)

    @ls.feature(types.TEXT_DOCUMENT_DEFINITION)
    async def on_definition(
        ls: AgentLanguageServer, params: types.DefinitionParams
    ) -> list[types.Location] | None:
        await ls.service_for_feature()
        return agent_files.definition(ls, params)

    @ls.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def on_symbols(
        ls: AgentLanguageServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol] | None:
        await ls.service_for_feature()
        return agent_files.document_symbols(ls, params)

    @ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def on_watched(ls: AgentLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        if ls.service is None:
            return
        paths = {p for c in params.changes if (p := uri_to_path(c.uri)) is not None}
        if paths:
            ls.service.files_changed(paths)

    return ls


def _buffer_changed(ls: AgentLanguageServer, uri: str, *, open_: bool) -> None:
    path = uri_to_path(uri)
    if ls.service is None or path is None:
        return
    text = open_text(ls, uri) if open_ else None
    ls.service.buffer_changed(path, text)
