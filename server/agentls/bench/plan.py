"""How much each scenario measures: the owner of the default and ``--quick`` sizes.

The default plan is sized to take about two minutes on the project's 2-vCPU machine, the quick
plan about twenty seconds (CI runs it). Sizes change the number of repetitions and the largest
trees, never what is measured or how.
"""

from __future__ import annotations

from dataclasses import dataclass


class BenchError(Exception):
    """A scenario measured something wrong (a file not read, a stale prompt, a failed run)."""


@dataclass(frozen=True)
class Plan:
    """Repetitions and sizes for one bench run."""

    quick: bool
    startup_runs: int
    rtt_reps: int
    rtt_requests: int
    rtt_inflight_requests: int
    load_trees: tuple[tuple[int, int], ...]
    """``(files, bytes per file)`` of the generated trees."""
    load_rounds: int
    preview_rounds: int
    preview_warm_reps: int
    pack_rounds: int
    pack_warm_reps: int
    secrets_rounds: int
    watch_tree: tuple[int, int]
    watch_writes: int
    watch_idle_s: float
    storm_changes: int
    storm_rounds: int
    revalidate_reps: int
    stale_writes: int
    hit_runs: int
    hit_edits: int
    hit_pause: float
    """Seconds between the edits and the run (outlasts the loader's racy window)."""
    memory_runs: int
    streaming_runs: int
    streaming_rounds: int
    registry_rounds: int = 5
    """Rounds of the registry scenario (each: one in-process load, one server)."""
    registry_list_reps: int = 50
    """Warm ``agents.list`` requests per round."""
    recipe_files: int = 200
    """Files the recipe scenario's ``for_each`` step runs over (16 at a time)."""
    recipe_rounds: int = 5
    """Recipes run in the recipe scenario (each after timing single runs alone)."""
    recipe_single_runs: int = 7
    """Runs of the step's agent alone per round (their median is "one run")."""


DEFAULT = Plan(
    quick=False,
    startup_runs=10,
    rtt_reps=3,
    rtt_requests=2000,
    rtt_inflight_requests=4000,
    load_trees=((100, 10_000), (1000, 10_000), (10_000, 4_000)),
    load_rounds=5,
    preview_rounds=3,
    preview_warm_reps=10,
    pack_rounds=5,
    pack_warm_reps=5,
    secrets_rounds=3,
    watch_tree=(10_000, 4_000),
    watch_writes=30,
    watch_idle_s=3.0,
    storm_changes=5000,
    storm_rounds=2,
    revalidate_reps=5,
    stale_writes=200,
    hit_runs=30,
    hit_edits=5,
    hit_pause=0.1,
    memory_runs=100_000,
    streaming_runs=64,
    streaming_rounds=3,
)

QUICK = Plan(
    quick=True,
    startup_runs=2,
    rtt_reps=1,
    rtt_requests=500,
    rtt_inflight_requests=1000,
    load_trees=((100, 10_000), (1000, 10_000)),
    load_rounds=1,
    preview_rounds=1,
    preview_warm_reps=3,
    pack_rounds=1,
    pack_warm_reps=2,
    secrets_rounds=1,
    watch_tree=(1000, 4_000),
    watch_writes=5,
    watch_idle_s=0.5,
    storm_changes=5000,
    storm_rounds=1,
    revalidate_reps=2,
    stale_writes=30,
    hit_runs=5,
    hit_edits=5,
    hit_pause=0.1,
    memory_runs=2_000,
    streaming_runs=64,
    streaming_rounds=1,
    registry_rounds=1,
    registry_list_reps=10,
    recipe_files=48,
    recipe_rounds=2,
    recipe_single_runs=3,
)
