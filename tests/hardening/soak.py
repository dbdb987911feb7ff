"""N3 soak: many runs against one server; RSS, fds, threads and children must not grow.

Not part of the pytest run (it takes minutes). Run it from the repository root:

    .venv/bin/python -m tests.hardening.soak --runs 10000

It starts `agentls serve` on a scratch workspace, drives a mix of succeeding, failing and
cancelled runs through the raw-frame client (production settings: no asyncio debug), samples the
server's RSS, open fds, threads and children every ``--sample`` runs, and prints one JSON report:
the RSS slope per 1 000 runs after warm-up (pass: < 1 MB), whether fds/threads/children returned
to their baseline, and the history size against its cap. Exit status 0 when every criterion holds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from tests.hardening.conftest import make_workspace
from tests.hardening.rawclient import RawServer, wait_gone


def _sample(proc: psutil.Process) -> dict[str, int]:
    return {
        "rss": proc.memory_info().rss,
        "fds": proc.num_fds(),
        "threads": proc.num_threads(),
        "children": len(proc.children(recursive=True)),
    }


def _slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of (runs, rss) in bytes per run."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points) or 1
    return num / den


def soak(runs: int, sample_every: int, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="agentls-soak-"))
    workspace = make_workspace(tmp / "ws")
    (workspace / "agentls.toml").write_text(
        (workspace / "agentls.toml").read_text()
        + "\n[limits]\nhistory_max_entries = 1000\nhistory_max_bytes = 4194304\n"
    )
    mark = uuid.uuid4().hex
    server = RawServer(tmp / "srv", env={"HARDENING_MARK": mark}, debug=False)
    try:
        server.initialize(workspace)
        proc = psutil.Process(server.pid)
        baseline = _sample(proc)
        samples: list[dict[str, int]] = []
        started = time.monotonic()
        done = 0
        while done < runs:
            batch = []
            for _ in range(min(concurrency, runs - done)):
                agent = rng.choices(["echo", "fail", "chunks", "slow"], [6, 2, 1, 1])[0]
                batch.append(
                    (agent, server.command("agentls.run", {"agent": agent, "task": "soak"}))
                )
            for agent, rid in batch:
                if agent == "slow":
                    server.wait_for(lambda m, r=rid: m.get("method") == "agentls/runStarted", 10)
                    server.notify("$/cancelRequest", {"id": rid})
                server.response(rid, 60)
            done += len(batch)
            # Keep the client's own memory flat: the server's behaviour is what is measured.
            server.forget_messages()
            if done % sample_every < concurrency:
                samples.append({"runs": done, **_sample(proc)})
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        final = _sample(proc)
        history = server.call("agentls.metrics")["history"]
        warm = [s for s in samples if s["runs"] >= runs // 5]
        slope = _slope([(s["runs"], s["rss"]) for s in warm]) * 1000
        code = server.shutdown_and_exit()
        leftovers = wait_gone(mark, 5.0)
        report = {
            "runs": runs,
            "seconds": round(elapsed, 1),
            "runs_per_second": round(runs / elapsed, 1),
            "rss_start_mb": round(baseline["rss"] / 2**20, 1),
            "rss_end_mb": round(final["rss"] / 2**20, 1),
            "rss_slope_mb_per_1000_runs": round(slope / 2**20, 3),
            "fds": [baseline["fds"], final["fds"]],
            "threads": [baseline["threads"], final["threads"]],
            "children_at_end": final["children"],
            "history_entries": history.get("disk_entries"),
            "history_file_bytes": history.get("file_bytes"),
            "exit_code": code,
            "leftover_processes": len(leftovers),
        }
        report["ok"] = (
            report["rss_slope_mb_per_1000_runs"] < 1.0
            and final["fds"] <= baseline["fds"] + 2
            and final["threads"] <= baseline["threads"] + 2
            and final["children"] == 0
            and (history.get("disk_entries") or 0) <= 1000
            and code == 0
            and not leftovers
        )
        return report
    finally:
        server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = soak(args.runs, args.sample, args.concurrency, args.seed)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
