"""Disk events for the workspace folders, delivered on the event loop: the source of invalidation.

``watchfiles.awatch`` (Rust ``notify``, inotify on Linux) watches every folder recursively. Its
``step`` is the latency knob (measured on the 2-vCPU machine: a write is delivered after roughly
one to two steps; 20 ms costs about 0.3% of a core idle, the default 50 ms 0.2%) and
``debounce`` only caps how long a burst (a ``git checkout``) keeps being gathered into one batch.
Polling is never forced: it cost 8.8% CPU idle and missed events.

``start`` returns once the watch is live: ``yield_on_timeout`` makes ``awatch`` hand back an empty
set after its first quiet ``timeout_ms``, which can only happen after the inotify watches were
registered, so an edit made after ``start`` returns is never missed. A failing watch (a folder
removed, the inotify watch limit reached) is logged and restarted with backoff; it never takes the
server down, and the cache stays correct meanwhile because every cache hit is validated by ``stat``.

Events inside ``.git/`` are dropped here: git rewrites its own files constantly and the index never
uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchfiles import awatch

logger = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.5
"""Seconds before the first restart of a failed watch."""

_BACKOFF_MAX = 30.0
"""The longest wait between restarts."""

_START_WAIT_CAP = 10.0
"""``start`` gives up waiting for liveness after this many seconds beyond one timeout."""


def _outside_git(_change: Any, path: str) -> bool:
    """The ``watch_filter``: everything but paths inside a ``.git`` directory."""
    return "/.git/" not in path and not path.endswith("/.git")


class Watcher:
    """Watches folders and calls back, on the event loop, with the set of changed paths."""

    def __init__(
        self,
        folders: Sequence[Path],
        on_changes: Callable[[set[Path]], None],
        *,
        debounce_ms: int = 200,
        step_ms: int = 20,
        timeout_ms: int = 500,
    ) -> None:
        """A watcher that is not running yet.

        Args:
            folders: the directories to watch recursively (missing ones are skipped and
                retried on restart).
            on_changes: called on the event loop with each batch; its exceptions are logged.
            debounce_ms: the longest a burst of changes is gathered before it is delivered.
            step_ms: how often the Rust side checks for news; the latency of a single write.
            timeout_ms: how long a quiet watch waits before waking Python; ``start`` waits for
                the first such wake-up, so this bounds its duration. Longer costs less idle CPU.

        Raises:
            ValueError: a non-positive timing.
        """
        if min(debounce_ms, step_ms, timeout_ms) <= 0:
            raise ValueError("watcher timings must be positive")
        self._folders: tuple[Path, ...] = tuple(dict.fromkeys(folders))
        """The folders to watch."""
        self._on_changes = on_changes
        """Where batches go."""
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._timeout_ms = timeout_ms
        self._task: asyncio.Task[None] | None = None
        """The loop running ``awatch`` (and restarting it)."""
        self._stop_event = asyncio.Event()
        """Set to make the Rust watch return at its next step."""
        self._live = asyncio.Event()
        """Set once the current watch is registered (or the first attempt failed)."""
        self.restarts = 0
        """How many times the watch failed and was started again."""

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders being watched."""
        return self._folders

    @property
    def running(self) -> bool:
        """Whether the watch loop is running."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start watching and return once the watch is live (or its first attempt failed).

        Calling it while running does nothing.
        """
        if self.running:
            return
        self._stop_event = asyncio.Event()
        self._live = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="agentls-watcher")
        wait = self._timeout_ms / 1000 + _START_WAIT_CAP
        try:
            await asyncio.wait_for(asyncio.shield(self._live.wait()), wait)
        except TimeoutError:
            logger.warning("file watcher not live after %.1f s; carrying on", wait)

    async def stop(self) -> None:
        """Stop watching; returns when the watch has ended. Idempotent."""
        task = self._task
        if task is None:
            return
        self._stop_event.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self._step_ms / 1000 + 2.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            self._task = None

    async def set_folders(self, folders: Sequence[Path]) -> None:
        """Watch other folders; a running watch is restarted on them.

        Args:
            folders: the new set of directories.
        """
        new = tuple(dict.fromkeys(folders))
        if new == self._folders:
            return
        was_running = self.running
        await self.stop()
        self._folders = new
        if was_running:
            await self.start()

    async def _run(self) -> None:
        """Run ``awatch`` until stopped, restarting it with backoff when it fails."""
        backoff = _BACKOFF_FIRST
        while not self._stop_event.is_set():
            folders = [f for f in self._folders if f.is_dir()]
            if not folders:
                self._live.set()
                logger.info("no existing folder to watch")
                return
            try:
                async for changes in awatch(
                    *folders,
                    debounce=self._debounce_ms,
                    step=self._step_ms,
                    rust_timeout=self._timeout_ms,
                    yield_on_timeout=True,
                    stop_event=self._stop_event,
                    watch_filter=_outside_git,
                    ignore_permission_denied=True,
                ):
                    self._live.set()
                    backoff = _BACKOFF_FIRST
                    if changes:
                        self._deliver({Path(path) for _change, path in changes})
                return  # awatch ends only when the stop event is set
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._live.set()
                self.restarts += 1
                logger.warning(
                    "file watcher failed (%s: %s); restarting in %.1f s",
                    type(e).__name__,
                    e,
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _deliver(self, paths: set[Path]) -> None:
        """Hand a batch to the callback; its bugs are logged so the watch goes on."""
        try:
            self._on_changes(paths)
        except Exception:
            logger.exception("handling %d file changes failed", len(paths))
