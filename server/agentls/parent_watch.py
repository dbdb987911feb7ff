"""Watching the editor process: owner of the poll that notices when the client that started us died.

An editor that crashes or is killed with SIGKILL never sends ``shutdown`` or ``exit`` and may not
even close our stdin (a grandparent shell or a helper can keep the pipe open). LSP's answer is the
``processId`` in ``initialize``: the server should exit when that process is gone. pygls 2.1.1
stores the pid but watches nothing, so this module does.

It knows nothing about LSP: it polls one pid with psutil and calls ``on_gone`` once. A pid can be
reused by an unrelated process after the editor died, so the process is identified by its pid *and*
its creation time; a zombie (dead, not yet reaped by its own parent) counts as gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psutil

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""Seconds between checks of the editor's pid (one cheap ``/proc`` read each)."""


def _identity(pid: int) -> psutil.Process | None:
    """The process with this pid, or None when there is none (or it is already a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        proc.create_time()  # fixes the identity used by ``is_running`` against pid reuse
        return proc
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        # It exists but belongs to someone else; psutil still compares creation times.
        return psutil.Process(pid) if psutil.pid_exists(pid) else None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return psutil.pid_exists(proc.pid)


async def watch_parent(
    pid: int, on_gone: Callable[[], None], *, interval: float = POLL_SECONDS
) -> None:
    """Call ``on_gone`` once the process ``pid`` no longer exists; return after that.

    Args:
        pid: The client's process id from ``initialize``.
        on_gone: Called once, on the event loop, when the process is gone (or was never there:
            an editor that died before we started must not leave us running).
        interval: Seconds between checks.
    """
    if pid <= 0:
        logger.warning("ignoring the client's processId %d: not a process id", pid)
        return
    proc = _identity(pid)
    # Polling: no event exists for "another process died" that works for non-children.
    while proc is not None and _alive(proc):  # noqa: ASYNC110
        await asyncio.sleep(interval)
    logger.warning("the client process %d is gone; exiting", pid)
    on_gone()
