"""Execution history on real SQLite files: bounds, persistence, damage, degradation, durability."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentls.execution.history import CHECKPOINT_EVERY, ExecutionHistory, history_path
from agentls.execution.records import RunRecord

SERVER = Path(__file__).resolve().parents[2] / "server"


def rec(
    i: int,
    *,
    agent: str = "reviewer",
    status: str = "succeeded",
    output: str = "out",
    started: float | None = None,
) -> RunRecord:
    return RunRecord(
        id=f"r{i:05d}",
        agent=agent,
        task=f"task {i}",
        status=status,  # type: ignore[arg-type]
        output=output,
        started_at=1_000.0 + i if started is None else started,
        duration_ms=1.5,
        backend="local",
        usage={"prompt_tokens": 3, "completion_tokens": None},
        manifest=[{"path": f"src/{i}.py", "status": "included", "bytes": i}],
    )


def opened(path: Path | None, **kw: int) -> ExecutionHistory:
    kw.setdefault("max_entries", 1000)
    kw.setdefault("max_bytes", 8 * 1024 * 1024)
    h = ExecutionHistory(path, **kw)
    h.open()
    return h


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SERVER}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_history_path_depends_on_the_set_of_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "My Project!", tmp_path / "lib"
    a.mkdir()
    b.mkdir()
    data = tmp_path / "data"
    p1 = history_path(data, [a, b])
    assert p1 == history_path(data, [b, a])
    assert p1 != history_path(data, [a])
    assert p1.parent.parent == data / "workspaces" and p1.name == "history.sqlite3"
    assert p1.parent.name.startswith("My_Project-")  # realpaths sorted: ".../My Project!" first
    assert history_path(data, [tmp_path / "link-free" / ".."]).parent.name.count("-") >= 1


def test_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.sqlite3"
    h = opened(path)
    records = [rec(i) for i in range(5)]
    for r in records:
        h.add(r)
    h.close()
    again = opened(path)
    assert again.degraded is None
    assert again.stats()["entries"] == 0  # nothing in memory: everything comes from disk
    assert again.list() == records[::-1]
    assert again.get("r00003") == records[3]
    assert again.get("nope") is None
    again.close()


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "disk"])
def test_list_filters_and_order(tmp_path: Path, on_disk: bool) -> None:
    h = opened(tmp_path / "h.sqlite3" if on_disk else None)
    for i in range(10):
        h.add(rec(i, agent="a" if i % 2 else "b", status="failed" if i % 3 == 0 else "succeeded"))
    assert [r.id for r in h.list(limit=3)] == ["r00009", "r00008", "r00007"]
    assert [r.id for r in h.list(agent="a", status="failed")] == ["r00009", "r00003"]
    assert [r.id for r in h.list(since=1_007.0)] == ["r00009", "r00008", "r00007"]
    assert h.list(limit=0) == [] and h.list(agent="zzz") == []
    h.close()


def test_memory_only_is_bounded_by_entries() -> None:
    h = opened(None, max_entries=10)
    for i in range(25):
        h.add(rec(i))
    assert h.stats()["entries"] == 10
    assert [r.id for r in h.list(limit=100)] == [f"r{i:05d}" for i in range(24, 14, -1)]
    assert h.get("r00000") is None


def test_memory_only_is_bounded_by_bytes() -> None:
    limit = 100 * 1024
    h = opened(None, max_entries=10_000, max_bytes=limit)
    for i in range(60):
        h.add(rec(i, output="x" * 5_000))
    stats = h.stats()
    assert stats["bytes"] <= limit
    assert 10 <= stats["entries"] < 25
    assert h.get("r00059") is not None and h.get("r00000") is None


def test_disk_is_bounded_by_entries_and_memory_is_a_small_cache(tmp_path: Path) -> None:
    h = opened(tmp_path / "h.sqlite3", max_entries=20, memory_max_entries=5)
    for i in range(60):
        h.add(rec(i))
    stats = h.stats()
    assert stats["disk_entries"] == 20 and stats["entries"] == 5
    assert [r.id for r in h.list(limit=100)] == [f"r{i:05d}" for i in range(59, 39, -1)]
    assert h.get("r00041") == rec(41)  # not in memory any more: read from disk
    assert h.get("r00039") is None  # pruned
    h.close()


def test_disk_is_bounded_by_bytes_including_the_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    limit = 200 * 1024
    h = opened(path, max_entries=100_000, max_bytes=limit)
    for i in range(400):
        h.add(rec(i, output=f"{i:05d}" + "y" * 10_000))
    stats = h.stats()
    assert stats["disk_bytes"] <= limit
    assert 15 <= stats["disk_entries"] <= 20
    newest = h.list(limit=1)[0]
    assert newest.id == "r00399" and newest.output.startswith("00399")
    h.close()
    # Rows are bounded, and so is the file once the WAL is checkpointed at close.
    assert path.stat().st_size < 2 * limit


def test_a_record_larger_than_the_bound_is_cut_not_lost(tmp_path: Path) -> None:
    limit = 64 * 1024
    h = opened(tmp_path / "h.sqlite3", max_bytes=limit)
    h.add(rec(1, output="é" * 100_000))
    stored = h.get("r00001")
    assert stored is not None
    assert stored.output.endswith("[output cut to fit the history size limit]")
    assert stored.output.startswith("é" * 1000) and stored.manifest == []
    assert h.stats()["disk_bytes"] <= limit
    h.close()


def test_lone_surrogates_do_not_break_recording(tmp_path: Path) -> None:
    h = opened(tmp_path / "h.sqlite3")
    h.add(rec(1, output="bad \ud800 text"))
    stored = h.get("r00001")
    assert stored is not None and stored.output.startswith("bad ")
    h.close()


def test_garbage_file_is_quarantined_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h.sqlite3"
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="agentls.execution.history"):
        h = opened(path)
    assert h.degraded is None
    moved = list(tmp_path.glob("h.sqlite3.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == garbage
    assert any("moved it to" in r.getMessage() for r in caplog.records)
    h.add(rec(1))
    h.close()
    assert opened(path).get("r00001") == rec(1)


def test_damaged_pages_are_quarantined_and_readable_runs_recovered(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = opened(path)
    for i in range(300):
        h.add(rec(i, output="z" * 1500))
    h.close()
    size = path.stat().st_size
    with path.open("r+b") as f:  # zero a run of pages in the middle of the table
        f.seek((size // 2) // 4096 * 4096)
        f.write(b"\0" * 4096 * 4)
    again = opened(path)
    assert again.degraded is None
    assert list(tmp_path.glob("h.sqlite3.corrupt-*")), "the damaged file was not moved aside"
    survivors = again.list(limit=1000)
    assert 0 < len(survivors) < 300  # the readable part came back, the damaged part did not
    assert all(r == rec(int(r.id[1:]), output="z" * 1500) for r in survivors)
    again.add(rec(1000))
    assert again.get("r01000") == rec(1000)
    again.close()


def test_unwritable_folder_degrades_to_memory_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    with caplog.at_level(logging.WARNING, logger="agentls.execution.history"):
        h = opened(blocker / "workspaces" / "x" / "history.sqlite3", max_entries=50)
        for i in range(80):
            h.add(rec(i))
    assert h.degraded is not None and "cannot create the history folder" in h.degraded
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert h.get("r00079") == rec(79)
    assert len(h.list(limit=1000)) == 50  # the full bounds apply once memory is all there is
    stats = h.stats()
    assert stats["degraded"] == h.degraded and stats["disk_entries"] == 0


def test_newer_schema_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = path.read_bytes()
    h = opened(path)
    assert h.degraded is not None and "newer agentls" in h.degraded
    h.add(rec(1))
    assert h.get("r00001") == rec(1)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.corrupt-*"))


def test_a_disk_full_error_degrades_to_memory(tmp_path: Path) -> None:
    """A real EFBIG: the child's file-size limit is hit while writing the history."""
    script = textwrap.dedent(f"""
        import json, logging, resource, signal, sys
        sys.path.insert(0, {str(SERVER)!r})
        from agentls.execution.history import ExecutionHistory
        from agentls.execution.records import RunRecord
        warnings = []
        class Keep(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.WARNING:
                    warnings.append(record.getMessage())
        logging.getLogger("agentls").addHandler(Keep())
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        h = ExecutionHistory({str(tmp_path / "h.sqlite3")!r}, max_entries=10000,
                             max_bytes=64 * 1024 * 1024)
        h.open()
        resource.setrlimit(resource.RLIMIT_FSIZE, (300 * 1024, 300 * 1024))
        for i in range(60):
            h.add(RunRecord(id=f"r{{i}}", agent="a", task="t", status="succeeded",
                            output="w" * 20000, started_at=float(i), duration_ms=1.0))
        print(json.dumps({{"degraded": h.degraded, "warnings": warnings,
                          "all": all(h.get(f"r{{i}}") is not None for i in range(60)),
                          "listed": len(h.list(limit=100))}}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["degraded"] and "writing the history file failed" in report["degraded"]
    assert len(report["warnings"]) == 1
    assert report["all"] is True and report["listed"] == 60


def test_two_instances_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    one, two = opened(path), opened(path)
    for i in range(20):
        one.add(rec(2 * i))
        two.add(rec(2 * i + 1))
    assert [r.id for r in one.list(limit=100)] == [f"r{i:05d}" for i in range(39, -1, -1)]
    assert two.list(limit=100) == one.list(limit=100)
    assert one.degraded is None and two.degraded is None
    one.close()
    two.close()


def test_every_acknowledged_run_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SERVER)!r})
        from agentls.execution.history import ExecutionHistory
        from agentls.execution.records import RunRecord
        base = int(sys.argv[1])
        h = ExecutionHistory({str(path)!r}, max_entries=100000, max_bytes=256 * 1024 * 1024)
        h.open()
        assert h.degraded is None, h.degraded
        i = 0
        while True:
            rid = f"k{{base + i}}"
            h.add(RunRecord(id=rid, agent="a", task="t", status="succeeded",
                            output="v" * (i % 3000), started_at=float(base + i),
                            duration_ms=1.0))
            sys.stdout.write(f"acked {{rid}}\\n")
            sys.stdout.flush()
            i += 1
    """)
    acked: list[str] = []
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", writer, str(round_ * 1_000_000)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 0.15 + 0.1 * round_
        first = proc.stdout.readline()  # at least one commit per round
        assert first.startswith("acked"), first
        lines = [first]
        while time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        lines.extend(proc.stdout)  # acks already written before the kill
        proc.wait()
        # Only whole lines count as acknowledged (the kill may cut the last one short).
        acked += [ln.split()[1] for ln in lines if ln.endswith("\n") and len(ln.split()) == 2]
    h = opened(path, max_entries=100_000, max_bytes=256 * 1024 * 1024)
    assert h.degraded is None and not list(tmp_path.glob("*.corrupt-*"))
    stored = {r.id for r in h.list(limit=1_000_000)}
    missing = [a for a in acked if a not in stored]
    assert not missing, f"{len(missing)} acknowledged runs lost, e.g. {missing[:3]}"
    assert len(acked) > 20
    h.close()


def test_stats_fields(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = opened(path, max_entries=100, max_bytes=1024 * 1024)
    h.add(rec(1))
    stats = h.stats()
    assert set(stats) >= {
        "entries",
        "bytes",
        "disk_entries",
        "disk_bytes",
        "degraded",
        "path",
        "file_bytes",
    }
    assert stats["entries"] == 1 and stats["bytes"] > 0
    assert stats["disk_entries"] == 1 and stats["disk_bytes"] > 0 and stats["file_bytes"] > 0
    assert stats["degraded"] is None and stats["path"] == str(path)
    h.close()
    h.close()  # twice is fine
    assert h.get("r00001") == rec(1)  # memory stays usable after close


def test_checkpoints_happen_off_the_loop_connection(tmp_path: Path) -> None:
    """Inserts never checkpoint (the fsync); the checkpoint thread keeps the WAL from growing."""
    h = opened(tmp_path / "h.sqlite")
    conn = h._conn
    assert conn is not None
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    wal = Path(f"{tmp_path / 'h.sqlite'}-wal")
    checkpointer = h._checkpointer
    assert checkpointer is not None
    writes = CHECKPOINT_EVERY * 5
    sizes = []
    for i in range(writes):
        h.add(rec(i, output="x" * 2000))
        pending = checkpointer._pending
        if pending is not None:
            pending.result(timeout=30)  # keep this test deterministic: one at a time
        if i % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
            sizes.append(wal.stat().st_size)
    # Checkpointed, the WAL is reused from its start: it stops growing after the first round
    # (without checkpoints it would hold all five rounds).
    assert sizes[-1] < sizes[0] * 1.5, sizes
    h.close()
    again = opened(tmp_path / "h.sqlite")
    assert len(again.list(limit=writes)) == writes
    again.close()


def test_output_secrets_persist_and_old_rows_load_without_them(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = opened(path)
    redacted = RunRecord(
        id="r-secret",
        agent="reviewer",
        task="t",
        status="succeeded",
        output="key [REDACTED:openai_key]",
        started_at=2_000.0,
        duration_ms=1.0,
        output_secrets=[{"line": 1, "kind": "openai_key"}],
    )
    h.add(redacted)
    h.add(rec(1))
    h.close()
    h = opened(path)
    assert h.get("r-secret") == redacted
    assert h.get("r00001") is not None and h.get("r00001").output_secrets == []  # type: ignore[union-attr]
    old = rec(2).to_dict()
    old.pop("output_secrets")  # a row written before the field existed
    assert RunRecord.from_dict(old).output_secrets == []
    h.close()


def test_age_bound_off_by_default_keeps_old_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = opened(path)
    h.add(rec(1, started=1.0))  # 1970: as old as a run can be
    assert h.prune_expired() == 0
    h.close()
    assert [r.id for r in opened(path).list()] == ["r00001"]


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "disk"])
def test_runs_past_the_age_bound_are_dropped(tmp_path: Path, on_disk: bool) -> None:
    now = time.time()
    day = 86_400.0
    h = ExecutionHistory(
        tmp_path / "h.sqlite3" if on_disk else None,
        max_entries=1000,
        max_bytes=8 << 20,
        max_age_days=7,
    )
    h.open()
    for i, age_days in enumerate((30, 8, 6.9, 0)):
        h.add(rec(i, started=now - age_days * day))
    assert h.prune_expired(now=now) == 2
    assert [r.id for r in h.list()] == ["r00003", "r00002"]
    assert h.get("r00000") is None and h.get("r00001") is None
    # a day later the 6.9-day-old run is past the bound too
    assert h.prune_expired(now=now + day) == 1
    assert [r.id for r in h.list()] == ["r00003"]
    h.close()


def test_expired_runs_are_dropped_from_the_file_when_it_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = opened(path)  # written by a server with no age bound
    now = time.time()
    h.add(rec(1, started=now - 40 * 86_400))
    h.add(rec(2, started=now - 60))
    h.close()
    again = ExecutionHistory(path, max_entries=1000, max_bytes=8 << 20, max_age_days=30)
    again.open()
    assert [r.id for r in again.list()] == ["r00002"]
    again.close()
    with sqlite3.connect(path) as conn:  # gone from the file, not only hidden
        assert conn.execute("SELECT id FROM runs").fetchall() == [("r00002",)]


def test_a_running_service_prunes_on_its_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service repeats the pruning every interval (an hour; shortened here)."""
    import asyncio

    import agentls.service
    from agentls.config import Limits, Settings
    from agentls.service import AgentService

    monkeypatch.setattr(agentls.service, "EXPIRY_INTERVAL_SECONDS", 0.05)
    folder = tmp_path / "ws"
    folder.mkdir()
    settings = Settings(limits=Limits(history_max_age_days=1), data_dir=tmp_path / "data")

    async def scenario() -> list[str]:
        service = AgentService(settings, [folder], watch=False)
        await service.start()
        try:
            service.history.add(rec(1, started=time.time() - 2 * 86_400))  # after open's prune
            service.history.add(rec(2, started=time.time()))
            for _ in range(200):  # the timer fires every 50 ms; 10 s only catches a hang
                if service.history.get("r00001") is None:
                    break
                await asyncio.sleep(0.05)
            return [r.id for r in service.history.list()]
        finally:
            await service.shutdown()

    assert asyncio.run(scenario()) == ["r00002"]
