"""The agentls application: composes the services and answers every command, without pygls.

``AgentService`` is the composition root for one workspace session. It owns the service objects
(index, cache, registry, builder, engine, history, metrics, backends, watcher) and the effective
``Settings``; every method runs on the event loop. The LSP layer (``agentls.lsp``) adapts it to the
protocol and ``agentls run`` drives it from a terminal, so both behave the same.

Callbacks out of the service (diagnostics to publish, a configuration file that changed) are plain
callables that the adapter sets; the service never knows who listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from agentls.agents.definition import AgentDefinition
from agentls.agents.handoffs import Handoff
from agentls.agents.language import BackendInfo, Catalog
from agentls.agents.locations import LOCATION_ROOTS, is_definition_path, may_hold_definitions
from agentls.agents.registry import AgentRegistry, scan_folder
from agentls.backends.base import BackendError, BackendRequest
from agentls.backends.factory import BackendFactory
from agentls.backends.models import ModelChoice, backend_aliases, resolve_model
from agentls.calibration import FILE_NAME as CALIBRATION_FILE
from agentls.calibration import Calibration, Estimate
from agentls.config import (
    MAX_CONFIG_FILE_BYTES,
    WORKSPACE_CONFIG_NAME,
    BackendConfig,
    Settings,
    default_data_dir,
    user_config_path,
    with_child_limits,
)
from agentls.context.builder import (
    BufferSource,
    ContextBuilder,
    ContextRequest,
    ContextResult,
    Selection,
)
from agentls.context.summaries import ContextSummaries, Summary
from agentls.context.tokens import bytes_within
from agentls.errors import (
    AgentlsError,
    EditConflict,
    InvalidAgent,
    InvalidArguments,
    UnknownRun,
)
from agentls.execution.engine import ExecutionEngine, RunJob, RunObserver
from agentls.execution.history import EXPIRY_INTERVAL_SECONDS, ExecutionHistory, history_path
from agentls.execution.outputs import new_preview_id, render_preview, render_run, write_document
from agentls.execution.recipes import RecipeObserver, RecipeRun
from agentls.execution.records import RunRecord
from agentls.execution.tool_loop import ToolPlan
from agentls.findings import Finding, FindingCollector, FindingStore, restore
from agentls.loop_lag import LoopLag
from agentls.memory_profile import MemoryProfiler
from agentls.metrics import Metrics
from agentls.requests import EditsApplyArgs, HistoryListArgs, MemoryProfileArgs, RunArgs
from agentls.run_limits import run_limits
from agentls.tools.edits import EditState, content_hash
from agentls.tools.toolbox import Toolbox, granted_groups
from agentls.workspace.cache import FileCache
from agentls.workspace.index import WorkspaceIndex
from agentls.workspace.reader import read_regular
from agentls.workspace.roots import WorkspaceRoots
from agentls.workspace.watcher import Watcher

logger = logging.getLogger(__name__)

MAX_POSITION_FILE_BYTES = 1024 * 1024
"""A file a finding is about that is larger than this is not read to place the diagnostic (its
positions are used as given)."""

INDEX_WAIT_SECONDS = 30.0
"""How long a run waits for the first workspace scan before building with what is known."""


class NoBuffers:
    """A ``BufferSource`` with no open editor buffers (the command line)."""

    def text(self, path: Path) -> str | None:
        """No buffer overrides disk."""
        return None

    def open_paths(self) -> list[Path]:
        """Nothing is open."""
        return []


@dataclass(frozen=True)
class EditBatch:
    """Edits of one run checked against the current files, ready for ``workspace/applyEdit``."""

    run_id: str
    agent: str
    edits: list[dict[str, Any]]
    """The edits' protocol form (``ProposedEdit.to_dict``), in the order they were proposed."""


@dataclass(frozen=True)
class RunPlan:
    """One run as decided before it starts: the job, and what its result needs besides."""

    job: RunJob
    config: BackendConfig | None
    context: ContextResult
    estimate: Estimate
    refusal: str | None
    """Why the run may not start (it is recorded as failed with this error); None if it may."""
    choice: ModelChoice
    """The effective model and why (``model_source``), for the result's model fields."""
    handoffs: tuple[Handoff, ...] = ()
    """The agent's next steps (``agents.handoffs``), copied into the result for the editor."""


class AgentService:
    """Everything one workspace session needs, behind methods that take and return plain data."""

    def __init__(self, settings: Settings, folders: Sequence[Path], *, watch: bool = True) -> None:
        self.settings = settings
        """The effective configuration; replaced as a whole by ``update_settings``."""
        self.roots = WorkspaceRoots(folders)
        """The workspace folders (realpaths); the only judge of what is inside."""
        limits = settings.limits
        self.index = WorkspaceIndex(self.roots, max_file_bytes=limits.max_file_bytes)
        self.cache = FileCache(max_bytes=limits.cache_max_bytes, folders=lambda: self.roots.folders)
        self.registry = AgentRegistry()
        self.builder = ContextBuilder(
            self.roots, self.index, self.cache, max_file_bytes=limits.max_file_bytes
        )
        self.metrics = Metrics()
        self.loop_lag = LoopLag()
        self.memory = MemoryProfiler()
        """``tracemalloc`` on demand (``agentls.memory.profile``); off until asked."""
        self.history = ExecutionHistory(
            self._history_file(),
            max_entries=limits.history_max_entries,
            max_bytes=limits.history_max_bytes,
            max_age_days=limits.history_max_age_days,
        )
        self.engine = ExecutionEngine(
            max_concurrent=limits.max_concurrent_runs,
            max_queued=limits.max_queued_runs,
            on_finished=self._run_finished,
        )
        self.backends = BackendFactory()
        data_dir = settings.data_dir or default_data_dir()
        self.calibration = Calibration(data_dir / CALIBRATION_FILE if self.roots.folders else None)
        """Bytes-per-token ratios learned per backend and model (shared by every workspace)."""
        self._watch = watch
        self.watcher: Watcher | None = None
        """Disk-change watcher over the folders; None until ``start`` (or when not watching)."""
        self.on_problems_changed: Callable[[set[Path]], None] = lambda paths: None
        """Set by the adapter: definition files whose problems changed (publish diagnostics)."""
        self.on_config_file_changed: Callable[[], None] = lambda: None
        """Set by the adapter: a workspace ``agentls.toml`` changed (reload the settings)."""
        self.is_open_in_editor: Callable[[Path], bool] = lambda path: False
        """Set by the adapter: whether the editor holds an unsaved buffer for a path."""
        self._applying: set[tuple[str, str]] = set()
        """(run, edit) pairs sent in a ``workspace/applyEdit`` that has not been answered yet."""
        self._no_tools: set[tuple[str, str | None]] = set()
        """(backend, model) pairs whose provider said the model cannot call tools."""
        self.findings = FindingStore()
        """Findings of ``output: diagnostics`` agents, per agent (their latest finished run)."""
        self.on_findings_changed: Callable[[set[Path]], None] = lambda paths: None
        """Set by the adapter: files whose findings changed (publish diagnostics)."""
        self._recipes: dict[str, RecipeRun] = {}
        """Recipes running now, by their id (``agentls.runs.cancel`` reaches them here)."""
        self._collectors: dict[str, FindingCollector] = {}
        """Runs in flight that collect findings, by run id (``finding_collector``)."""
        self.summaries = ContextSummaries()
        """Cached context sizes per agent, for code lenses."""
        self.on_context_changed: Callable[[], None] = lambda: None
        """Set by the adapter: something contexts depend on changed (refresh code lenses)."""
        self._scan_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._model_memo: dict[tuple[str | None, str | None], ModelChoice] = {}
        self._models_for: Settings | None = None
        """The settings ``_model_memo`` was computed for."""
        self._listed: tuple[int, Settings, tuple[Path, ...], dict[str, Any]] | None = None
        """The last ``agents.list`` answer and what it was built from (registry version,
        settings, folders): a warm list is a lookup, and the LSP layer encodes it as is."""

    # -- lifecycle ---------------------------------------------------------------------------

    def _history_file(self) -> Path | None:
        if not self.roots.folders:
            return None
        return history_path(self.settings.data_dir or default_data_dir(), self.roots.folders)

    async def start(self) -> None:
        """Load agents, open history, start the scan and the watcher; does not wait for the scan."""
        self.loop_lag.start()
        await asyncio.to_thread(self.history.open)  # reads the whole file once: not on the loop
        # the cross-file rules first, while the registry is empty: loading applies them once
        changed = self.registry.set_backends(
            self.settings.backends.keys(), self.settings.default_backend
        )
        changed |= self.registry.set_model_check(self._model_note)
        for folder in self.roots.folders:
            # Walking and reading the definitions touches the disk: a worker thread does it.
            changed |= self.registry.apply_scan(await asyncio.to_thread(scan_folder, folder))
        self.on_problems_changed(changed | set(self.registry.files()))
        self._restore_findings()
        if self._watch and self.roots.folders:
            self.watcher = Watcher(self.roots.folders, self.files_changed)
            # The watcher proves itself live only after a quiet interval; commands need not wait.
            self._watch_task = asyncio.create_task(self._start_watcher(), name="agentls-watch")
        self._scan_task = asyncio.create_task(self._scan_and_warm(), name="agentls-scan")
        if self.settings.limits.history_max_age_days:
            self._expiry_task = asyncio.create_task(self._expire_history(), name="agentls-expiry")

    async def _expire_history(self) -> None:
        """Drop runs past ``history_max_age_days`` every hour (``open`` did it at start)."""
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL_SECONDS)
            try:
                self.history.prune_expired()
            except Exception:  # prune_expired degrades itself; never let the timer die
                logger.exception("could not prune the history")

    async def _scan_and_warm(self) -> None:
        """Index the folders, then load their files into the cache so the first run is warm.

        Half the cache budget at most: the rest is room for what runs read later without
        evicting what was just loaded. The loop stays free between batches.
        """
        await self.index.scan()
        # recipes' for_each globs can be counted now
        self.on_problems_changed(self.registry.set_fan_out_check(self._fan_out_problem))
        limits = self.settings.limits
        loaded = await self.cache.warm(
            [e.path for e in self.index.usable()],
            max_file_bytes=limits.max_file_bytes,
            max_bytes=limits.cache_max_bytes // 2,
        )
        logger.info("workspace loaded: %d files warm in the cache", loaded)

    async def _start_watcher(self) -> None:
        assert self.watcher is not None
        try:
            await self.watcher.start()
        except Exception:  # the server works without a watcher, only staler
            logger.exception("file watcher failed to start; relying on editor notifications")
            self.watcher = None

    async def shutdown(self) -> None:
        """Cancel runs, stop watching, close history and backends. Safe to call twice."""
        self.loop_lag.stop()
        recipes = list(self._recipes.values())
        for recipe in recipes:
            recipe.cancel()
        await self.engine.shutdown(timeout=1.0)
        if recipes:  # their records go to history before it closes
            ended = [asyncio.ensure_future(r.ended.wait()) for r in recipes]
            _, pending = await asyncio.wait(ended, timeout=1.0)
            for waiter in pending:
                waiter.cancel()
        if self.memory.tracing:
            self.memory.stop()
        if self._watch_task is not None and not self._watch_task.done():
            self._watch_task.cancel()
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self._scan_task is not None and not self._scan_task.done():
            self._scan_task.cancel()
        if self._expiry_task is not None:
            self._expiry_task.cancel()
        await self.index.close()
        await self.backends.aclose()
        self.calibration.flush()
        self.history.close()

    async def set_folders(self, folders: Sequence[Path]) -> None:
        """The editor's workspace folders changed: reload agents, rescan, rewatch."""
        old = set(self.roots.folders)
        self.roots.set_folders(folders)
        new = set(self.roots.folders)
        changed: set[Path] = set()
        for folder in old - new:
            changed |= self.registry.remove_folder(folder)
        for folder in new - old:
            changed |= self.registry.apply_scan(await asyncio.to_thread(scan_folder, folder))
        changed |= self.registry.set_backends(
            self.settings.backends.keys(), self.settings.default_backend
        )
        self.on_problems_changed(changed)
        self._scan_task = asyncio.create_task(self._scan_and_warm(), name="agentls-rescan")
        if self.watcher is not None:
            await self.watcher.set_folders(self.roots.folders)

    def update_settings(self, settings: Settings) -> None:
        """New configuration: backends and trust apply to the next run; limits at restart."""
        self.settings = settings
        # the registry's model check reads self.settings, so this refresh applies [models] too
        changed = self.registry.set_backends(settings.backends.keys(), settings.default_backend)
        self.on_problems_changed(changed)
        self._context_changed()

    # -- change notifications ----------------------------------------------------------------

    def files_changed(self, paths: set[Path]) -> None:
        """Disk changed (watcher or editor notification): invalidate, reindex, reload agents."""
        self.cache.invalidate(paths)
        self.index.note_changes(paths)
        self._context_changed()
        problems: set[Path] = set()
        config_changed = False
        linked: set[Path] = set()
        for path in paths:
            # A storm (a checkout of thousands of files) comes as one batch on the loop: skip
            # the paths that cannot be configuration or agents before any path arithmetic.
            if path.name != WORKSPACE_CONFIG_NAME and LOCATION_ROOTS.isdisjoint(path.parts):
                # a folder that a definition location links to holds definitions too
                if path.suffix in ("", ".md") and self.registry.follows(path):
                    linked.add(path)
                continue
            folder = self.roots.folder_of(path)
            if folder is None:
                continue
            rel = path.relative_to(folder).as_posix()
            if rel == WORKSPACE_CONFIG_NAME:
                config_changed = True
            elif may_hold_definitions(rel) and not self.is_open_in_editor(path):
                # a moved or deleted folder is reported once; update() rescans for it
                problems |= self.registry.update(path, None)
        if linked:
            # one rescan per folder for the whole batch, however many files the storm touched
            problems |= self.registry.rescan_following(linked)
        if problems:
            self.on_problems_changed(problems)
        if config_changed:
            self.on_config_file_changed()

    def buffer_changed(self, path: Path, text: str | None) -> None:
        """An editor buffer opened, changed (``text``) or closed (``None``): agents follow it."""
        folder = self.roots.folder_of(path)
        self._context_changed()
        if folder is None or not is_definition_path(path.relative_to(folder).as_posix()):
            return
        self.on_problems_changed(self.registry.update(path, text))

    # -- commands ----------------------------------------------------------------------------

    def list_agents(self) -> dict[str, Any]:
        """``agentls.agents.list``: ``model`` is what a run asks for (``model_source`` says why).

        The answer is built once per state of the registry, settings and folders; callers must
        not change it.
        """
        cached = self._listed
        if (
            cached is not None
            and cached[0] == self.registry.version
            and cached[1] is self.settings
            and cached[2] == self.roots.folders
        ):
            return cached[3]
        agents = []
        display = self._display_function()
        for entry in self.registry.agents():
            d = entry.to_dict(display)
            d["uri"] = entry.source.as_uri()
            d["task"] = entry.definition.task if entry.definition else ""
            if entry.definition is not None:
                choice = self.model_for(entry.definition)
                d["model"] = choice.model
                d["model_requested"] = choice.requested
                d["model_source"] = choice.source
            else:
                d["model_requested"] = None
                d["model_source"] = None
            agents.append(d)
        answer = {"agents": agents}
        self._listed = (self.registry.version, self.settings, self.roots.folders, answer)
        return answer

    def _display_function(self) -> Callable[[Path], str]:
        """``roots.display`` for definition files, by string slicing (pathlib's ``relative_to``
        costs more than the rest of a 1,000-agent list) when the paths allow it."""
        folders = self.roots.folders
        if len(folders) != 1 or os.sep != "/":
            return self.roots.display
        prefix = str(folders[0]).rstrip("/") + "/"

        def display(path: Path) -> str:
            text = str(path)
            return text[len(prefix) :] if text.startswith(prefix) else self.roots.display(path)

        return display

    def model_for(self, agent: AgentDefinition) -> ModelChoice:
        """The model ``agent`` runs on with its backend, by the ``[models]`` rules.

        Memoised per (model, backend) for the current settings: a collection of 1,000 agents
        names a handful of models, and the registry asks at every refresh.
        """
        settings = self.settings
        if self._models_for is not settings:
            self._model_memo.clear()
            self._models_for = settings
        key = (agent.model, agent.backend)
        choice = self._model_memo.get(key)
        if choice is None:
            config = settings.backend(agent.backend)
            choice = resolve_model(agent.model, config, settings.models)
            self._model_memo[key] = choice
        return choice

    def _model_note(self, agent: AgentDefinition) -> str | None:
        """The registry's hint for a model that is not sent as written."""
        return self.model_for(agent).note

    async def preview(self, args: RunArgs, buffers: BufferSource) -> dict[str, Any]:
        """``agentls.context.preview``: the exact prompt and manifest, no backend contacted.

        The prompt comes already encoded as JSON (an ``orjson.Fragment``, encoded once per
        assembly): a repeated preview of an unchanged workspace copies it into the answer
        instead of decoding and encoding megabytes again. Serialize the result with orjson.
        """
        settings = self.settings
        agent = self.registry.get(args.agent)
        estimate = self._estimate(agent, settings.backend(agent.backend))
        context = await self._build(agent, args, buffers, estimate, settings)
        return {
            "prompt": orjson.Fragment(context.prompt_json),
            "manifest": _manifest(context, estimate),
            "token_estimate": estimate.to_dict(),
        }

    async def run(
        self,
        args: RunArgs,
        buffers: BufferSource,
        observer: RunObserver | None = None,
        *,
        parent: str | None = None,
    ) -> dict[str, Any]:
        """``agentls.run``: plan the run, run it on the backend, record it.

        Argument errors and unknown agents raise (the request fails); everything that goes wrong
        once a run exists (untrusted backend, missing program, provider errors, timeouts) is a
        ``failed``/``timed_out`` run in the result and in history. Cancelling the awaiting task
        cancels the run, which is recorded as ``cancelled`` before the cancellation propagates.
        A recipe's name runs the recipe (``run_recipe``, without step notifications); ``parent``
        marks the run as a step of that recipe.
        """
        if self.is_recipe(args.agent):
            if parent is not None:
                raise InvalidAgent(f"{args.agent!r} is a recipe; a recipe step runs an agent")
            return await self.run_recipe(args, buffers)
        plan = await self._plan(args, buffers, parent)
        job = plan.job
        if args.dry_run:
            duration = round((time.time() - job.started_at) * 1000, 3)
            record = ExecutionEngine.record(job, "succeeded", duration_ms=duration)
            return {
                **record.to_dict(),
                **_result_fields(plan),
                "prompt": plan.context.prompt,
                "dry_run": True,
                "token_estimate": plan.estimate.to_dict(),
            }
        if plan.refusal is not None:
            record = self.engine.refuse(job, plan.refusal, observer)
            return {
                **record.to_dict(),
                **_result_fields(plan),
                "token_estimate": plan.estimate.to_dict(),
            }
        handle = self.engine.submit(job, observer)
        try:
            record = await asyncio.shield(handle.wait())
        except asyncio.CancelledError:
            self.engine.cancel(job.id)
            await handle.wait()
            raise
        estimate = plan.estimate
        prompt_tokens = handle.first_prompt_tokens  # later turns' prompts are not this one
        if record.status == "succeeded" and prompt_tokens and plan.config is not None:
            prompt_bytes = len(plan.context.prompt_bytes)
            estimate = self.calibration.observe(
                plan.config.name, job.model, prompt_bytes, prompt_tokens
            )
        return {
            **record.to_dict(),
            **_result_fields(plan),
            "token_estimate": estimate.to_dict(),
        }

    async def _plan(
        self, args: RunArgs, buffers: BufferSource, parent: str | None = None
    ) -> RunPlan:
        """Everything a run is, decided from one snapshot of the settings and the folders.

        The settings may be replaced while the context is built (a configuration reload); the
        run keeps the ones it started with, so its backend, limits and estimate agree.
        """
        settings = self.settings
        folders = self.roots.folders
        agent = self.registry.get(args.agent)
        started = time.time()
        config = settings.backend(agent.backend)
        choice = self.model_for(agent)
        model = choice.model
        estimate = self._estimate(agent, config)
        context = await self._build(agent, args, buffers, estimate, settings)
        run_id = uuid.uuid4().hex[:12]
        workspace = str(folders[0]) if folders else None
        refusal = None if args.dry_run else self._refusal(agent, config, settings, folders)
        limits = settings.limits
        backend = None
        if refusal is None and config is not None and not args.dry_run:
            config = with_child_limits(config, limits)
            try:
                backend = self.backends.get(config)
            except BackendError as e:
                refusal = e.message
        tools, notes = (
            (None, ()) if backend is None else self._tools(agent, config, model, buffers, settings)
        )
        own = run_limits(agent, settings)
        notes = (*own.notes, *notes)
        if tools is not None:
            budget = bytes_within(own.max_context_tokens, estimate.bytes_per_token)
            tools = replace(
                tools,
                budget_bytes=max(0, budget - len(context.prompt_bytes)),
                bytes_per_token=estimate.bytes_per_token,
            )
        finalize = None
        if agent.output == "diagnostics" and refusal is None and not args.dry_run:
            collector = FindingCollector(
                self.roots, self.roots.folder_of(agent.source), agent.name, run_id
            )
            self._collectors[run_id] = collector
            finalize = self._finalizer(collector)
            if tools is not None:
                tools.toolbox.reporter = collector.report  # report_finding, besides output lines
        job = RunJob(
            id=run_id,
            agent=agent.name,
            task=args.task,
            backend=backend,
            backend_name=config.name if config else agent.backend,
            model=model,
            request=BackendRequest(
                run_id=run_id,
                system=context.system,
                user=context.user,
                model=model,
                cwd=None if config is None else self._child_cwd(agent, config, settings),
            ),
            timeout=own.timeout,
            max_output_bytes=limits.max_output_bytes,
            manifest=_manifest(context, estimate),
            workspace=workspace,
            started_at=started,
            tools=tools,
            notes=notes,
            finalize=finalize,
            parent=parent,
        )
        return RunPlan(job, config, context, estimate, refusal, choice, agent.handoffs)

    # -- recipes -------------------------------------------------------------------------------

    def is_recipe(self, name: str) -> bool:
        """Whether ``name`` is a runnable recipe (False for agents and unknown names)."""
        try:
            return self.registry.get(name).is_recipe
        except AgentlsError:
            return False

    async def run_recipe(
        self, args: RunArgs, buffers: BufferSource, observer: RecipeObserver | None = None
    ) -> dict[str, Any]:
        """``agentls.run`` of a recipe: its steps as runs, then the parent record.

        A dry run answers the plan (steps, their fan-out files) and runs nothing.

        Raises:
            InvalidArguments: a ``for_each`` matches more than ``limits.max_fan_out`` files.
        """
        recipe = self.registry.get(args.agent)
        settings = self.settings
        limits = settings.limits
        if self.index.state != "ready":
            await self.index.wait_ready(timeout=INDEX_WAIT_SECONDS)
        items: dict[str, list[tuple[str, Path]]] = {}
        for step in recipe.steps:
            if step.for_each is not None:
                found = await self._fan_out_items(step.for_each)
                if len(found) > limits.max_fan_out:
                    raise InvalidArguments(
                        "agent",
                        f"recipe {recipe.name!r}: step {step.id!r} for_each {step.for_each!r} "
                        f"matches {len(found)} files, more than limits.max_fan_out "
                        f"({limits.max_fan_out}); narrow the glob or raise the limit",
                    )
                items[step.id] = found
        if args.dry_run:
            steps = [
                {
                    "id": step.id,
                    "agent": step.agent,
                    "needs": list(step.needs),
                    **({"items": [i for i, _ in items[step.id]]} if step.for_each else {}),
                }
                for step in recipe.steps
            ]
            return {
                "id": None,
                "agent": recipe.name,
                "task": args.task,
                "dry_run": True,
                "status": "succeeded",
                "output": _recipe_plan(steps),
                "manifest": [],
                "duration_ms": 0.0,
                "steps": steps,
            }
        folders = self.roots.folders
        recipe_run = RecipeRun(
            uuid.uuid4().hex[:12],
            recipe,
            args,
            items=items,
            launch=lambda step_args, step_observer, parent: self.run(
                step_args, buffers, step_observer, parent=parent
            ),
            default_task=self._default_task,
            max_in_flight=limits.max_concurrent_runs,
            max_output_chars=limits.max_output_bytes,
            observer=observer,
            on_finished=self._run_finished,
            workspace=str(folders[0]) if folders else None,
        )
        self._recipes[recipe_run.id] = recipe_run
        try:
            record = await recipe_run.run()
        finally:
            self._recipes.pop(recipe_run.id, None)
        return {
            **record.to_dict(),
            "edits": self._edits_of(record),
            "handoffs": [h.to_dict() for h in recipe.handoffs],  # a recipe may offer next steps
        }

    def _default_task(self, agent: str) -> str:
        try:
            return self.registry.get(agent).task
        except AgentlsError:
            return ""

    async def _fan_out_items(self, glob: str) -> list[tuple[str, Path]]:
        """The usable workspace files a ``for_each`` glob selects, by path, as shown and real."""
        found: list[tuple[str, Path]] = []
        for folder in self.roots.folders:
            entries, _ = await self.index.expand(folder, (glob,))
            found.extend((self.roots.display_rel(e.folder, e.rel), e.path) for e in entries)
        found.sort()
        return found

    def _fan_out_problem(self, glob: str) -> str | None:
        """The registry's check of a ``for_each``: an error when it selects too many files.

        Judged once the first scan is done (None before), by the index's cached match.
        """
        if self.index.state != "ready":
            return None
        limit = self.settings.limits.max_fan_out
        try:
            count = sum(len(self.index.match(f, (glob,))[0]) for f in self.roots.folders)
        except AgentlsError:
            return None
        if count <= limit:
            return None
        return (
            f"for_each {glob!r} matches {count} files, more than limits.max_fan_out ({limit}); "
            "the recipe would be refused"
        )

    def _edits_of(self, record: RunRecord) -> list[dict[str, Any]]:
        """The edits a record offers: its own, or for a recipe those of its steps' runs.

        A recipe's edits are read from its steps' records (which own their state), each with a
        recipe-wide id ``<step>/<edit>`` (``<step>[n]/<edit>`` for a fan-out file) and the
        ``run_id``, ``step`` and ``item`` it came from.
        """
        if record.steps is None:
            return record.edits
        out: list[dict[str, Any]] = []
        for step in record.steps:
            run_id = step.get("run_id")
            child = self.history.get(str(run_id)) if run_id else None
            if child is None:
                continue
            index = step.get("index")
            label = str(step["id"]) + (f"[{index}]" if index is not None else "")
            for edit in child.edits:
                entry = {
                    **edit,
                    "id": f"{label}/{edit['id']}",
                    "run_id": child.id,
                    "step": step["id"],
                }
                if step.get("item") is not None:
                    entry["item"] = step["item"]
                out.append(entry)
        return out

    def _tools(
        self,
        agent: AgentDefinition,
        config: BackendConfig | None,
        model: str | None,
        buffers: BufferSource,
        settings: Settings,
    ) -> tuple[ToolPlan | None, tuple[str, ...]]:
        """The tool loop's plan for a run (None: single-shot) and the notes that explain why not.

        Tools are offered by the HTTP backends only, to a model not known to refuse them.
        """
        groups = granted_groups(agent)
        if not groups or config is None:
            return None, ()
        asked = bool(agent.tools)
        if config.kind == "command":
            note = f"backend {config.name!r} runs a command, single-shot: tools are not offered"
            return None, (note,) if asked else ()
        if not config.tools:
            return None, (f"backend {config.name!r} sets tools = false: ran without tools",)
        key = (config.name, model)
        if key in self._no_tools:
            return None, (
                f"model {model!r} on backend {config.name!r} does not support tools (found on an "
                "earlier run): ran without them",
            )
        limits = settings.limits
        toolbox = Toolbox(
            groups,
            roots=self.roots,
            index=self.index,
            cache=self.cache,
            buffers=buffers,
            scanner=self.builder.secrets,
            max_file_bytes=limits.max_file_bytes,
            max_result_bytes=limits.max_tool_result_bytes,
        )
        plan = ToolPlan(
            toolbox,
            max_turns=run_limits(agent, settings).max_turns,
            max_tool_calls=max(0, limits.max_tool_calls),
            budget_bytes=0,
            bytes_per_token=1.0,
            on_tools_unsupported=lambda: self._no_tools.add(key),
        )
        return plan, ()

    # -- editor features -----------------------------------------------------------------------

    def code_action_agents(self) -> list[AgentDefinition]:
        """Valid agents offered as code actions: they take the selection or the active file, and
        do not opt out with ``code_action: false``. Answered from memory."""
        out = []
        for entry in self.registry.agents():
            d = entry.definition
            if d is None or not entry.valid or not d.code_action or d.is_recipe:
                continue  # a recipe may fan out over many files: run it deliberately
            if d.include and not {"selection", "active_file"} & set(d.include):
                continue
            out.append(d)
        return out

    def language_catalog(self) -> Catalog:
        """The configuration facts completion and hover offer (from memory)."""
        return Catalog(
            backends={
                name: BackendInfo(name, b.kind, b.model, b.origin)
                for name, b in self.settings.backends.items()
            },
            default_backend=self.settings.default_backend,
            model_aliases=self._default_aliases(),
            configs=self.settings.backends,
            models=self.settings.models,
        )

    def _default_aliases(self) -> dict[str, str]:
        """The model aliases that apply to the default backend (``[models]`` alone without one)."""
        default = self.settings.backend(None)
        if default is None:
            return dict(self.settings.models.common)
        return backend_aliases(default, self.settings.models)

    def backend_config_files(self, name: str) -> list[Path]:
        """The configuration files that may define ``[backends.NAME]``, the winning layer first."""
        config = self.settings.backends.get(name)
        if config is None:
            return []
        workspace = [f / WORKSPACE_CONFIG_NAME for f in self.roots.folders]
        if config.origin == "workspace":
            return workspace
        if config.origin == "user":
            return [user_config_path()]
        return []

    def context_summary(self, agent: str) -> tuple[Summary | None, bool]:
        """The cached context size of an agent and whether it is current (code lenses)."""
        return self.summaries.get(agent)

    async def refresh_summaries(self, agents: Sequence[str], buffers: BufferSource) -> bool:
        """Recompute stale summaries; True when any shown value changed."""
        changed = False
        for name in agents:
            if self.summaries.get(name)[1]:
                continue
            generation = self.summaries.generation
            try:
                agent = self.registry.get(name)
                settings = self.settings
                estimate = self._estimate(agent, settings.backend(agent.backend))
                context = await self._build(
                    agent, RunArgs(agent=name, task=agent.task), buffers, estimate, settings
                )
            except Exception:  # an agent that cannot build shows no summary, never an error
                logger.debug("no context summary for %s", name, exc_info=True)
                continue
            files = sum(1 for m in context.manifest if m.status in ("included", "truncated"))
            changed |= self.summaries.store(name, generation, Summary(files, context.tokens))
        self.summaries.forget({e.name for e in self.registry.agents()})
        return changed

    def _context_changed(self) -> None:
        self.summaries.invalidate()
        self.on_context_changed()

    def outputs_folder(self) -> Path:
        """Where result documents go: beside this workspace's history, in the data folder."""
        data_dir = self.settings.data_dir or default_data_dir()
        if self.roots.folders:
            return history_path(data_dir, self.roots.folders).parent / "outputs"
        return data_dir / "outputs"

    async def write_result(self, result: dict[str, Any]) -> Path:
        """Write a run's result as a Markdown document; returns its path."""
        text = render_run(result)
        return await asyncio.to_thread(
            write_document,
            self.outputs_folder(),
            str(result.get("agent")),
            str(result.get("id")),
            text,
            preview=False,
        )

    async def write_preview(self, agent: str, result: dict[str, Any]) -> Path:
        """Write a context preview as a Markdown document; returns its path."""
        text = render_preview(agent, result)
        return await asyncio.to_thread(
            write_document, self.outputs_folder(), agent, new_preview_id(), text, preview=True
        )

    # -- findings ----------------------------------------------------------------------------

    def finding_collector(self, run_id: str) -> FindingCollector | None:
        """The collector of a running diagnostics run (what a ``report_finding`` tool feeds)."""
        return self._collectors.get(run_id)

    def _finalizer(self, collector: FindingCollector) -> Callable[[RunRecord], RunRecord]:
        """What completes a diagnostics run's record: its findings, which replace the agent's."""

        def finalize(record: RunRecord) -> RunRecord:
            self._collectors.pop(record.id, None)
            if record.status != "succeeded":
                return record  # an unfinished run leaves the previous findings standing
            collector.read_output(record.output)
            changed = self.findings.replace(record.agent, record.id, collector.findings)
            if changed:
                self.on_findings_changed(changed)
            return replace(
                record,
                findings=[f.to_dict() for f in collector.findings],
                findings_dropped=collector.dropped,
            )

        return finalize

    def clear_findings(self, agent: str | None, uri: str | None) -> dict[str, Any]:
        """``agentls.findings.clear``: drop findings (all, one agent's, one file's) for good.

        The agent's run record in history is rewritten with what remains, so a restart does not
        bring cleared findings back.
        """
        path = self.roots.resolve(uri) if uri is not None else None
        before = self.findings.count()
        changed, remaining = self.findings.clear(agent, path)
        for name, kept in remaining.items():
            run_id = self.findings.run_of(name)
            record = self.history.get(run_id) if run_id else None
            if record is not None:
                self.history.add(replace(record, findings=[f.to_dict() for f in kept]))
        if changed:
            self.on_findings_changed(changed)
        return {
            "cleared": before - self.findings.count(),
            "uris": sorted(p.as_uri() for p in changed),
        }

    def findings_for(self, path: Path) -> list[Finding]:
        """The current findings about one file (for diagnostics and quick fixes)."""
        return self.findings.for_path(path)

    def file_text(self, path: Path) -> str | None:
        """A workspace file's text to place diagnostics on when the editor does not have it open.

        The registry's parse of a definition, else the context cache, else one read through the
        safe reader (inside the workspace folders, not a secret file, at most
        ``MAX_POSITION_FILE_BYTES``: it happens on the event loop). None when there is none, and
        the diagnostics keep the positions they were given.
        """
        text = self.registry.text(path)
        if text is not None:
            return text
        item = self.cache.get(path)
        if item is not None:
            return item.data.decode("utf-8", "replace")
        got = read_regular(path, max_bytes=MAX_POSITION_FILE_BYTES, within=self.roots.folders)
        return None if isinstance(got, str) else got.data.decode("utf-8", "replace")

    def config_file_text(self, path: Path) -> str | None:
        """The text of a configuration file ``backend_config_files`` named (go-to-definition).

        Read through the safe reader like the settings were (``config._read_toml``): the user's
        file as the user's, a workspace ``agentls.toml`` only inside its folder.
        """
        within = None if path == user_config_path() else self.roots.folders
        got = read_regular(
            path, max_bytes=MAX_CONFIG_FILE_BYTES, within=within, follow_symlink=True
        )
        return None if isinstance(got, str) else got.data.decode("utf-8", "replace")

    def _restore_findings(self) -> None:
        """Bring back each diagnostics agent's latest findings from history (a restart)."""
        found: list[tuple[str, str, list[dict[str, Any]]]] = []
        names = {
            e.name
            for e in self.registry.agents()
            if e.definition is not None and e.definition.output == "diagnostics"
        }
        for name in sorted(names):
            for record in self.history.list(limit=20, agent=name):
                if record.findings is not None:
                    found.append((name, record.id, record.findings))
                    break
        changed: set[Path] = set()
        for name, run_id, findings in restore(found):
            inside = [f for f in findings if self.roots.folder_of(f.path) is not None]
            changed |= self.findings.replace(name, run_id, inside)
        if changed:
            self.on_findings_changed(changed)

    def cancel(self, run_id: str) -> dict[str, Any]:
        """``agentls.runs.cancel``: True when a queued or running run was cancelled."""
        recipe = self._recipes.get(run_id)
        if recipe is not None:
            return {"cancelled": recipe.cancel()}
        return {"cancelled": self.engine.cancel(run_id)}

    def cancel_run(self, run_id: str) -> bool:
        """Cancel a run or a recipe by id (the progress Cancel button's callback)."""
        return bool(self.cancel(run_id)["cancelled"])

    def status(self) -> dict[str, Any]:
        """``agentls.status``."""
        return {
            "runs": self.engine.active() + self._active_recipes(),
            "index": self.index.stats(),
            "trusted": self.settings.trusted,
            "folders": [str(f) for f in self.roots.folders],
            "config_problems": [*self.settings.problems, *map(str, self.settings.ignored)],
        }

    def _active_recipes(self) -> list[dict[str, Any]]:
        out = []
        for recipe in self._recipes.values():
            done, total, running = recipe.progress()
            out.append(
                {
                    "id": recipe.id,
                    "agent": recipe.recipe.name,
                    "status": "running",
                    "submitted_at": recipe.started_at,
                    "kind": "recipe",
                    "steps_done": done,
                    "steps_total": total,
                    "running": running,
                }
            )
        return out

    def history_list(self, args: HistoryListArgs) -> dict[str, Any]:
        """``agentls.history.list``: newest first, short form."""
        records = self.history.list(limit=args.limit, agent=args.agent, status=args.status)
        return {"runs": [r.summary() for r in records]}

    def history_get(self, run_id: str) -> dict[str, Any]:
        """``agentls.history.get``: one run in full."""
        record = self.history.get(run_id)
        if record is None:
            raise UnknownRun(run_id)
        if record.steps is not None:
            return {**record.to_dict(), "edits": self._edits_of(record)}
        return record.to_dict()

    async def edits_to_apply(self, args: EditsApplyArgs, buffers: BufferSource) -> EditBatch:
        """``agentls.edits.apply``, first half: the edits to send, checked against the files now.

        Each edit's file is read again the way tools read it (unsaved buffer over disk); one whose
        text no longer hashes to the edit's ``base`` (or a new file that now exists) is refused
        with ``EditConflict`` naming the file, so an edit is never applied to different text.
        A recipe's id applies the edits of its steps together; two of them that change the same
        region of a file are refused.

        Raises:
            UnknownRun: no such run in history.
            InvalidArguments: an edit id the run does not have.
            EditConflict: an edit already applied or discarded, whose file changed, or that
                overlaps another edit chosen with it.
        """
        record = self.history.get(args.id)
        if record is None:
            raise UnknownRun(args.id)
        offered = self._edits_of(record)
        by_id = {e.get("id"): e for e in offered}
        if args.edits is None:
            chosen = [e for e in offered if e.get("state") == "proposed"]
            if not chosen:
                raise EditConflict(f"run {args.id} has no proposed edits to apply")
        else:
            unknown = [i for i in args.edits if i not in by_id]
            if unknown:
                known = ", ".join(str(i) for i in by_id) or "none"
                raise InvalidArguments(
                    "edits", f"run {args.id} has no edit {unknown[0]!r} (its edits: {known})"
                )
            chosen = [by_id[i] for i in args.edits]
        for edit in chosen:
            if edit.get("state") != "proposed":
                raise EditConflict(f"edit {edit['id']} was already {edit.get('state')}")
            if _owner(record, edit) in self._applying:
                raise EditConflict(f"edit {edit['id']} is being applied by another request")
        _check_overlaps(chosen)
        paths = [self.roots.resolve(str(edit["uri"])) for edit in chosen]
        reader = Toolbox(
            frozenset(),
            roots=self.roots,
            index=self.index,
            cache=self.cache,
            buffers=buffers,
            scanner=self.builder.secrets,
            max_file_bytes=self.settings.limits.max_file_bytes,
            max_result_bytes=0,
        )
        current = await reader.read_texts(paths)
        for edit, path in zip(chosen, paths, strict=True):
            now = current[path]
            if edit.get("create"):
                if now != "missing":
                    raise EditConflict(
                        f"{edit['path']} exists now; edit {edit['id']} would have created it. "
                        "Run the agent again."
                    )
            elif isinstance(now, str) or content_hash(now.text) != edit.get("base"):
                raise EditConflict(
                    f"{edit['path']} changed since edit {edit['id']} was proposed; it was not "
                    "applied. Run the agent again."
                )
        # Held until edits_settled: a second request must not apply the same edit to new text.
        self._applying.update(_owner(record, edit) for edit in chosen)
        return EditBatch(record.id, record.agent, chosen)

    def edits_settled(self, run_id: str, edit_ids: Sequence[str], state: EditState | None) -> int:
        """Record that edits were applied or discarded (None: neither, the client declined).

        Always called after ``edits_to_apply``, which holds the edits until then. A recipe's
        edits are settled in the records of the steps' runs that own them. Returns how many
        edits changed state.
        """
        record = self.history.get(run_id)
        if record is None:
            self._applying.difference_update((run_id, i) for i in edit_ids)
            raise UnknownRun(run_id)
        by_id = {str(e.get("id")): e for e in self._edits_of(record)}
        owned: dict[str, list[str]] = {}
        for edit_id in edit_ids:
            edit = by_id.get(edit_id)
            owner_run, owner_edit = _owner(record, edit) if edit else (run_id, edit_id)
            self._applying.discard((owner_run, owner_edit))
            owned.setdefault(owner_run, []).append(owner_edit)
        if state is None:
            return 0
        return sum(self._settle(owner, ids, state) for owner, ids in owned.items())

    def _settle(self, run_id: str, edit_ids: Sequence[str], state: EditState) -> int:
        """Mark edits of one run's record (the owner of their state) applied or discarded."""
        record = self.history.get(run_id)
        if record is None:
            raise UnknownRun(run_id)
        wanted = set(edit_ids)
        changed = 0
        edits = []
        for edit in record.edits:
            if edit.get("id") in wanted and edit.get("state") == "proposed":
                edit = {**edit, "state": state}
                changed += 1
            edits.append(edit)
        if changed:
            self.history.add(replace(record, edits=edits))
        return changed

    def edits_discard(self, run_id: str) -> dict[str, Any]:
        """``agentls.edits.discard``: every proposed edit of a run (or recipe) is discarded."""
        record = self.history.get(run_id)
        if record is None:
            raise UnknownRun(run_id)
        ids = [str(e.get("id")) for e in self._edits_of(record) if e.get("state") == "proposed"]
        return {"discarded": self.edits_settled(run_id, ids, "discarded")}

    def metrics_snapshot(self) -> dict[str, Any]:
        """``agentls.metrics``."""
        return self.metrics.snapshot(
            cache=self.cache.stats(),
            index=self.index.stats(),
            history=self.history.stats(),
            engine={"active": len(self.engine.active())},
            loop=self.loop_lag.snapshot(),
        )

    async def memory_profile(self, args: MemoryProfileArgs) -> dict[str, Any]:
        """``agentls.memory.profile``: start, snapshot or stop tracing allocations."""
        if args.action == "start":
            return await self.memory.start()
        if args.action == "stop":
            return self.memory.stop()
        return await self.memory.snapshot(args.top)

    def clear_cache(self) -> dict[str, Any]:
        """``agentls.cache.clear``."""
        return {"cleared": self.cache.clear()}

    # -- internals ---------------------------------------------------------------------------

    def _estimate(self, agent: AgentDefinition, config: BackendConfig | None) -> Estimate:
        """The bytes-per-token ratio for the backend and model this agent runs on."""
        if config is None:
            return self.calibration.estimate(None, None)
        return self.calibration.estimate(config.name, self.model_for(agent).model)

    async def _build(
        self,
        agent: AgentDefinition,
        args: RunArgs,
        buffers: BufferSource,
        estimate: Estimate,
        settings: Settings,
    ) -> ContextResult:
        active = self.roots.resolve(args.uri) if args.uri else None
        files = tuple(self.roots.resolve(f) for f in args.files)
        selection = None
        if active is not None and args.range is not None:
            r = args.range
            selection = Selection(
                active, r.start.line, r.start.character, r.end.line, r.end.character
            )
        if self.index.state != "ready":
            await self.index.wait_ready(timeout=INDEX_WAIT_SECONDS)
        limits = settings.limits
        own = run_limits(agent, settings)
        return await self.builder.build(
            agent,
            ContextRequest(
                task=args.task,
                selection=selection,
                active_file=active,
                files=files,
                variables=args.variables,
            ),
            buffers,
            max_files=own.max_files,
            max_context_tokens=own.max_context_tokens,
            bytes_per_token=estimate.bytes_per_token,
            max_prompt_bytes=limits.max_prompt_bytes,
        )

    @staticmethod
    def _refusal(
        agent: AgentDefinition,
        config: BackendConfig | None,
        settings: Settings,
        folders: Sequence[Path],
    ) -> str | None:
        """Why this agent may not run now, as a message that says what to do; None if it may."""
        if config is None:
            if agent.backend:
                return f"backend {agent.backend!r} is not configured"
            return (
                "no backend configured: set default_backend and [backends.NAME] in agentls.toml "
                "or ~/.config/agentls/config.toml"
            )
        if config.origin == "workspace" and not settings.trusted:
            folder = folders[0] if folders else "this workspace"
            return (
                f"backend {config.name!r} is defined by the workspace's agentls.toml, and the "
                "workspace is not trusted. Trust it in your editor (VS Code: Workspace Trust; "
                'other editors: initializationOptions {"trusted": true}), or add '
                f'trusted_workspaces = ["{folder}"] to ~/.config/agentls/config.toml.'
            )
        return None

    def _child_cwd(
        self, agent: AgentDefinition, config: BackendConfig, settings: Settings
    ) -> str | None:
        """The working directory of a ``command`` child: the agent's workspace folder only when
        the workspace is trusted (by the run's ``settings``) and the backend says
        ``cwd = "workspace"``; else None, a neutral empty folder (the repository then reaches the
        child only through the prompt)."""
        if not settings.trusted or config.cwd != "workspace":
            return None
        folder = self.roots.folder_of(agent.source) or (
            self.roots.folders[0] if self.roots.folders else None
        )
        return str(folder) if folder is not None else None

    def _run_finished(self, record: RunRecord) -> None:
        """Every finished run passes here once: history, then metrics."""
        try:
            self.history.add(record)
        except Exception:  # history degrades itself; this is the last line of defence
            logger.exception("could not record run %s", record.id)
        self.metrics.run_finished(record)


def _manifest(context: ContextResult, estimate: Estimate) -> list[dict[str, Any]]:
    """The manifest in protocol form: the files, then the agent's definition (source ``agent``);
    each entry says whether its token figure is calibrated."""
    entries = []
    rows = (
        context.manifest if context.definition is None else [*context.manifest, context.definition]
    )
    for m in rows:
        d = m.to_dict()
        d["calibrated"] = estimate.calibrated
        entries.append(d)
    return entries


def _recipe_plan(steps: Sequence[dict[str, Any]]) -> str:
    """A recipe's dry run as text: one line per step, what it waits for, how many files."""
    lines = []
    for step in steps:
        needs = f" after {', '.join(step['needs'])}" if step["needs"] else ""
        items = f", {len(step['items'])} file(s)" if "items" in step else ""
        lines.append(f"{step['id']}: {step['agent']}{needs}{items}")
    return "\n".join(lines) + "\n"


def _owner(record: RunRecord, edit: dict[str, Any]) -> tuple[str, str]:
    """The run whose record owns an edit's state, and the edit's id there."""
    if record.steps is None:
        return record.id, str(edit.get("id"))
    return str(edit.get("run_id")), str(edit.get("id")).rsplit("/", 1)[-1]


def _check_overlaps(edits: Sequence[dict[str, Any]]) -> None:
    """Refuse edits chosen together that touch the same region of one file.

    One run never proposes overlapping edits (``tools.edits``); the steps of a recipe may, and
    ``workspace/applyEdit`` cannot apply two changes to one region, nor could a user want both.
    """

    def bounds(edit: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
        r = edit.get("range") or {}
        start, end = r.get("start") or {}, r.get("end") or {}
        return (
            (int(start.get("line", 0)), int(start.get("character", 0))),
            (int(end.get("line", 0)), int(end.get("character", 0))),
        )

    by_file: dict[str, list[dict[str, Any]]] = {}
    for edit in edits:
        by_file.setdefault(str(edit.get("uri")), []).append(edit)
    for same_file in by_file.values():
        for i, a in enumerate(same_file):
            for b in same_file[i + 1 :]:
                (a0, a1), (b0, b1) = bounds(a), bounds(b)
                if a.get("base") != b.get("base") and not (a.get("create") or b.get("create")):
                    raise EditConflict(
                        f"edits {a['id']} and {b['id']} were proposed against different versions "
                        f"of {a.get('path')}; apply one of them (pass its id in edits)"
                    )
                if a.get("create") or b.get("create") or (a0 < b1 and b0 < a1) or a0 == b0:
                    raise EditConflict(
                        f"edits {a['id']} and {b['id']} both change {a.get('path')} in the same "
                        "place; apply one of them (pass its id in edits)"
                    )


def _result_fields(plan: RunPlan) -> dict[str, Any]:
    """What a run result adds to its record: the model fields, and the agent's handoffs (so the
    editor can offer the next step without asking for the agent again)."""
    return {**_model_fields(plan.choice), "handoffs": [h.to_dict() for h in plan.handoffs]}


def _model_fields(choice: ModelChoice) -> dict[str, Any]:
    """What a run result says about its model besides ``model``: what the file asked, and why."""
    fields: dict[str, Any] = {
        "model_requested": choice.requested,
        "model_source": choice.source,
    }
    if choice.note is not None:
        fields["model_note"] = choice.note
    return fields
