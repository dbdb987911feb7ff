"""Summaries of repeated measurements: the owner of how a bench figure is reduced and shown.

Every figure is the median of several runs with their min-max, because the machine is shared and
noisy (docs/performance.md). Ratios are formed per round from measurements taken side by side,
then summarised the same way, so a slow minute does not flatter one side.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile.

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class Figure:
    """One measured quantity: its median over runs, the min-max, and how many runs."""

    name: str
    unit: str
    median: float
    low: float
    high: float
    runs: int
    target: str | None = None
    """The goal from docs/performance.md's targets, as text (``<= 450``), when there is one."""
    met: bool | None = None
    """Whether the median meets the target (None without a target)."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "name": self.name,
            "unit": self.unit,
            "median": _round(self.median),
            "min": _round(self.low),
            "max": _round(self.high),
            "runs": self.runs,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }

    def cell(self) -> str:
        """``median (min-max)`` for the table."""
        if self.runs <= 1 or self.low == self.high:
            return _fmt(self.median)
        return f"{_fmt(self.median)} ({_fmt(self.low)}-{_fmt(self.high)})"


def _round(value: float) -> float:
    """Enough digits for a machine to compare, not noise."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, digits)


def _fmt(value: float) -> str:
    """A figure for people: three significant digits, thousands separated."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def summarise(
    name: str,
    unit: str,
    values: Sequence[float],
    *,
    target: tuple[str, float] | None = None,
    note: str = "",
) -> Figure:
    """Reduce runs to a figure, judged against a target.

    Args:
        name: what was measured.
        unit: ``ms``, ``req/s``, ``x``, ``MB``, ``%``...
        values: one value per run (at least one).
        target: ``("<=", 450.0)`` or ``(">=", 5000.0)``.
        note: context shown with the figure (sizes, counts).

    Raises:
        ValueError: no values, or an unknown comparison.
    """
    if not values:
        raise ValueError(f"{name}: no measurements")
    median = statistics.median(values)
    met: bool | None = None
    text: str | None = None
    if target is not None:
        op, goal = target
        if op == "<=":
            met = median <= goal
        elif op == ">=":
            met = median >= goal
        else:
            raise ValueError(f"unknown comparison {op!r}")
        text = f"{op} {_fmt(goal)}"
    return Figure(name, unit, median, min(values), max(values), len(values), text, met, note)


@dataclass
class ScenarioResult:
    """What one scenario measured, or why it could not."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    """Context that is not a figure (file counts, versions, the tree measured)."""
    skipped: str | None = None
    """Why the scenario did not run (a missing tool), if it did not."""
    error: str | None = None
    """What went wrong, if the scenario failed."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "figures": [f.to_dict() for f in self.figures],
            "info": self.info,
            "skipped": self.skipped,
            "error": self.error,
            "seconds": round(self.seconds, 2),
        }
