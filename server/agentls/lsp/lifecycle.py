"""The LSP session lifecycle: owner of the phase (uninitialized, running, shut down) and the exit.

LSP orders a session strictly: nothing but ``initialize`` before it (``-32002``), one
``initialize`` only, nothing but ``exit`` after ``shutdown`` (``-32600``), and ``exit`` ends the
process with 0 after ``shutdown`` and 1 without. pygls 2.1.1 serves requests before
``initialize``, silently drops those after ``shutdown`` and always exits 0. The protocol asks this
object what the phase allows; the transport waits on ``exit_code`` to know when and how to end.

Anything may request the exit: the ``exit`` notification, the parent-process watcher, a signal.
The first request wins; later ones are ignored, so the exit code reflects what really happened
first.
"""

from __future__ import annotations

import asyncio
import enum
import logging

logger = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where the session is."""

    UNINITIALIZED = "uninitialized"
    """No ``initialize`` yet: requests get -32002, notifications other than ``exit`` are dropped."""
    RUNNING = "running"
    """``initialize`` was accepted."""
    SHUT_DOWN = "shut_down"
    """``shutdown`` arrived: requests get -32600, notifications other than ``exit`` are dropped."""


class Lifecycle:
    """The phase of one session and the exit request; changed on the event loop only."""

    def __init__(self) -> None:
        """Start before ``initialize``, with no exit requested."""
        self.phase = Phase.UNINITIALIZED
        self._exit: asyncio.Future[int] | None = None
        self._early_code: int | None = None
        """An exit requested before any loop existed (kept until ``exit_code`` is asked for)."""

    def exit_code(self) -> asyncio.Future[int]:
        """A future that resolves to the process exit code once an exit is requested.

        Created on first use, on the running loop (the server object is built before the loop).
        """
        if self._exit is None:
            self._exit = asyncio.get_running_loop().create_future()
            if self._early_code is not None:
                self._exit.set_result(self._early_code)
        return self._exit

    @property
    def exit_requested(self) -> bool:
        """Whether something already asked the process to end."""
        return self._early_code is not None or (self._exit is not None and self._exit.done())

    def request_exit(self, code: int, reason: str) -> None:
        """Ask the transport to end the session with ``code``; only the first request counts."""
        if self.exit_requested:
            logger.debug("exit (%s) ignored: an exit was already requested", reason)
            return
        logger.info("exiting with code %d: %s", code, reason)
        if self._exit is None:
            self._early_code = code
        else:
            self._exit.set_result(code)
