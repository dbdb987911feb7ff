"""The processes a ``command`` run leaves behind: found even after ``setsid``, killed, and reaped.

Stopping a run signals its process group, but a grandchild that calls ``setsid`` (a daemonising
tool, ``nohup``-style helpers, a shell's ``setsid``) leaves that group, and once its parent exits
it is re-parented to init, out of reach. Two things close that gap:

- The server is a **child subreaper** (``prctl(PR_SET_CHILD_SUBREAPER)``, Linux): an orphaned
  descendant is re-parented to the server instead of init, so it stays in the server's process
  tree and every sweep finds it.
- At a run's stop, ``family`` lists the run's whole tree (by parent links, before any signal) and
  ``adopted`` the orphans the server inherited that carry the run's ``AGENTLS_RUN_ID`` in their
  environment; ``kill_all`` SIGKILLs them and ``reap_adopted`` collects the exit status of every
  adopted orphan that has ended, so none stays a zombie.

Only adopted orphans are reaped here, pid by pid: the run's own program is reaped by asyncio's
child watcher, which waits for its specific pid and must not lose that status to us. That is why
reaping waits while a spawn is in flight (its pid is not known yet), and why it happens only in a
process that is a subreaper (``agentls serve``): anywhere else, a child that is not a run's is
someone else's to wait for. ``watch_orphans`` reaps on every ``SIGCHLD``, so an adopted orphan
that ends, killed by a run's stop or by itself, does not stay a zombie.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: most sweeps find nothing to inspect
    import psutil

logger = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
"""``prctl`` option number (linux/prctl.h)."""

RUN_ID_ENV = "AGENTLS_RUN_ID"
"""The variable every command child gets (``command.child_env``); descendants inherit it."""

_SPAWNED: set[int] = set()
"""Pids of run programs that asyncio started and still reaps (changed on the event loop)."""

_spawning = 0
"""Spawns in flight (their pid is not in ``_SPAWNED`` yet): reaping waits for them."""

_subreaper = False


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants; False where that is not available."""
    global _subreaper
    if _subreaper:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            logger.warning("could not become a child subreaper: %s", os.strerror(errno))
            return False
    except (OSError, AttributeError) as e:
        logger.warning("could not become a child subreaper: %s", e)
        return False
    _subreaper = True
    return True


def is_subreaper() -> bool:
    """Whether ``become_subreaper`` succeeded in this process."""
    return _subreaper


def spawn_starting() -> None:
    """A run's program is being started: no reaping until ``spawn_finished``."""
    global _spawning
    _spawning += 1


def spawn_finished(pid: int | None) -> None:
    """The spawn ended (``pid`` None: it failed); reaping that waited for it happens now."""
    global _spawning
    _spawning -= 1
    if pid is not None:
        _SPAWNED.add(pid)
    reap_adopted()


def watch_orphans(loop: asyncio.AbstractEventLoop) -> bool:
    """Reap adopted orphans whenever a child changes state (``SIGCHLD``); False if not possible."""
    if not _subreaper:
        return False
    try:
        loop.add_signal_handler(signal.SIGCHLD, reap_adopted)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def reaped(pid: int) -> None:
    """A run's program was reaped by asyncio."""
    _SPAWNED.discard(pid)


def children(pid: int) -> list[int]:
    """Direct children of ``pid``.

    Read from ``/proc/<pid>/task/*/children`` (Linux), which costs microseconds; psutil's own
    lookup scans every process on the machine, milliseconds per call on the event loop, and this
    runs at every run's end and on every ``SIGCHLD``.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        found: list[int] = []
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                found.extend(int(c) for c in f.read().split())
        return found
    except FileNotFoundError:
        if not os.path.isdir("/proc/self/task"):  # no procfs: ask psutil
            import psutil

            with contextlib.suppress(psutil.Error):
                return [c.pid for c in psutil.Process(pid).children()]
        return []  # the process (or one of its threads) is gone
    except (OSError, ValueError):
        return []


def _processes(pids: list[int]) -> list[psutil.Process]:
    import psutil

    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def _tree(roots: list[int]) -> list[int]:
    """``roots`` and every descendant of theirs, breadth first."""
    seen: list[int] = []
    queue = list(roots)
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.append(pid)
        queue.extend(children(pid))
    return seen


def family(pid: int) -> list[psutil.Process]:
    """The descendants of ``pid`` now (parent links), whatever session or group they are in."""
    return _processes(_tree(children(pid)))


def adopted(run_id: str | None = None) -> list[psutil.Process]:
    """Orphans the server inherited as subreaper, with their descendants.

    With ``run_id``, only those whose environment names that run (and their descendants); an
    orphan whose environment cannot be read or carries no run id is left to the exit sweep.
    """
    import psutil

    roots = []
    for pid in children(os.getpid()):
        if pid in _SPAWNED:
            continue
        if run_id is not None:
            try:
                if psutil.Process(pid).environ().get(RUN_ID_ENV) != run_id:
                    continue
            except psutil.Error:
                continue
        roots.append(pid)
    return _processes(_tree(roots))


def kill_all(processes: list[psutil.Process]) -> int:
    """SIGKILL each process that is still the one listed (pid reuse is checked); how many."""
    import psutil

    killed = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            if proc.is_running():
                proc.kill()
                killed += 1
    return killed


def reap_adopted() -> int:
    """Collect the exit status of every adopted orphan that has ended; how many were reaped."""
    if not _subreaper or _spawning:
        return 0
    reaped_count = 0
    for child in children(os.getpid()):
        if child in _SPAWNED:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            pid, _ = os.waitpid(child, os.WNOHANG)
            if pid:
                reaped_count += 1
    return reaped_count
