"""Loop lag: owner of the event loop's heartbeat, which measures how long the loop was held.

Every request, notification and run shares one event loop, so a step that holds it (a synchronous
write, a large encode, a whole tree walked at once) delays everything else. A heartbeat scheduled
every ``INTERVAL`` seconds fires late by exactly as long as the loop was busy when it fell due; its
lateness is the lag. A stall shorter than the interval can go unseen, one longer is always seen
(within one interval), which is what a figure about responsiveness needs.

The figures are bounded by construction: a fixed window of recent lags for percentiles and a
short list of recent stalls with their age, so ``agentls bench`` can ask "what was the longest
stall during the last N seconds" after a scenario without the server keeping a history.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

INTERVAL = 0.1
"""Seconds between heartbeats: ten wake-ups a second, nothing measurable on an idle server."""

STALL_SECONDS = 0.05
"""A lag at least this long is remembered as a stall (with when it happened)."""

LAG_WINDOW = 600
"""Recent lags kept for percentiles: the last minute at the default interval."""

STALLS_KEPT = 64
"""Recent stalls kept, newest last."""


class LoopLag:
    """The heartbeat and its figures; started and stopped on the loop it measures."""

    def __init__(self, *, interval: float = INTERVAL) -> None:
        """Not running until ``start``."""
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        """Seconds each recent heartbeat was late."""
        self._stalls: deque[tuple[float, float]] = deque(maxlen=STALLS_KEPT)
        """``(loop time when noticed, lag in seconds)`` of recent stalls."""
        self.longest = 0.0
        """The longest lag since ``start``, in seconds."""

    @property
    def running(self) -> bool:
        """Whether the heartbeat is scheduled."""
        return self._handle is not None

    def start(self) -> None:
        """Begin beating on the running loop (idempotent)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def stop(self) -> None:
        """Stop beating; the figures are kept."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._loop is not None
        due = self._loop.time() + self._interval
        self._handle = self._loop.call_at(due, self._beat, due)

    def _beat(self, due: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - due)
        self._lags.append(lag)
        if lag >= STALL_SECONDS:
            self._stalls.append((now, lag))
        self.longest = max(self.longest, lag)
        self._schedule()

    def snapshot(self) -> dict[str, Any]:
        """Lag percentiles over the recent window, the longest lag, and recent stalls by age."""
        ordered = sorted(self._lags)

        def pick(fraction: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)

        now = self._loop.time() if self._loop is not None else 0.0
        return {
            "interval_ms": round(self._interval * 1000, 3),
            "beats": len(ordered),
            "lag_p50_ms": pick(0.5),
            "lag_p99_ms": pick(0.99),
            "longest_stall_ms": round(self.longest * 1000, 3),
            "stalls": [
                {"ago_ms": round((now - at) * 1000, 1), "ms": round(lag * 1000, 3)}
                for at, lag in reversed(self._stalls)
            ],
        }
