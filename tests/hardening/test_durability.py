"""Catalogue D1, D2, D4, D5: the run history under kill -9, damage, no disk, two writers.

D3 (disk full, a real EFBIG) and D6 (bounds by entries and bytes) are in
``tests/unit/test_history.py``; ``docs/reliability.md`` lists where each row lives.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentls.execution.history import ExecutionHistory
from agentls.execution.records import RunRecord
from tests.hardening.conftest import CANARY
from tests.hardening.rawclient import RawServer

Start = Callable[..., RawServer]

KILL_ITERATIONS = 200


def _record(rid: str, size: int = 200) -> RunRecord:
    return RunRecord(
        id=rid,
        agent="a",
        task="t",
        status="succeeded",
        output="o" * size,
        started_at=time.time(),
        duration_ms=1.0,
    )


def _history(path: Path) -> ExecutionHistory:
    h = ExecutionHistory(path, max_entries=1_000_000, max_bytes=512 * 1024 * 1024)
    h.open()
    return h


def _writer(path: Path, base: int, ack_fd: int) -> None:
    """Child: append runs forever, writing "id\\n" to ``ack_fd`` after each commit."""
    try:
        h = _history(path)
        i = 0
        while True:
            rid = f"k{base}-{i}"
            h.add(_record(rid, size=(i * 37) % 5000))
            os.write(ack_fd, f"{rid}\n".encode())
            i += 1
    finally:
        os._exit(3)


def test_d1_kill_9_at_random_moments(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    rng = random.Random(1234)
    acked: list[str] = []
    for n in range(KILL_ITERATIONS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(r)
            _writer(path, n, w)
        os.close(w)
        time.sleep(rng.choice([0.0, 0.0005, 0.002, 0.005, 0.01, 0.02]))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        # Only whole lines were acknowledged (the kill may cut the last write short).
        acked += [ln for ln in data.decode().split("\n")[:-1] if ln]
        if n % 20 == 19 or n == KILL_ITERATIONS - 1:
            conn = sqlite3.connect(path)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
    h = _history(path)
    assert h.degraded is None
    assert not list(tmp_path.glob("*.corrupt-*"))
    stored = [r.id for r in h.list(limit=10_000_000)]
    assert len(stored) == len(set(stored))
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged runs lost, e.g. {sorted(missing)[:3]}"
    assert len(acked) > KILL_ITERATIONS  # the kills really landed mid-stream
    h.close()
    print(f"D1: {KILL_ITERATIONS} kills, {len(acked)} acknowledged runs, all present")


def _damaged_store(tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    path = tmp_path / "history.sqlite3"
    h = _history(path)
    for i in range(300):
        h.add(_record(f"r{i}", 1000))
    h.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    damage(path)
    return path


def _truncate_at(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.truncate(int(size * fraction))

    return damage


def _append_junk(path: Path) -> None:
    with path.open("ab") as f:
        f.write(os.urandom(10_000))


def _zero_last_4k(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(max(0, size - 4096))
        f.write(b"\0" * 4096)


def _garbage_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(os.urandom(100))


def _garbage_wal(path: Path) -> None:
    Path(f"{path}-wal").write_bytes(os.urandom(50_000))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE = {
    "truncated-to-0.3": _truncate_at(0.3),
    "truncated-to-0.97": _truncate_at(0.97),
    "truncated-mid-header": _truncate_at(0.0001),
    "junk-appended": _append_junk,
    "last-4k-zeroed": _zero_last_4k,
    "garbage-header": _garbage_header,
    "garbage-wal": _garbage_wal,
    "empty-file": _empty,
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_d2_damaged_store_opens_and_works(tmp_path: Path, name: str) -> None:
    path = _damaged_store(tmp_path, DAMAGE[name])
    h = _history(path)  # never raises
    assert h.degraded is None, h.degraded
    survivors = h.list(limit=1000)
    assert all(r.output == "o" * 1000 for r in survivors)  # what is read is right
    h.add(_record("after", 10))
    assert h.get("after") is not None
    h.close()
    again = _history(path)
    assert again.get("after") is not None and again.degraded is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    again.close()


def test_d2_server_starts_on_a_garbage_history(
    start_server: Start, workspace: Path, tmp_path: Path
) -> None:
    first = start_server()
    first.initialize(workspace)
    path = Path(first.call("agentls.metrics")["history"]["path"])
    assert first.shutdown_and_exit() == 0
    path.write_bytes(os.urandom(20_000))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    server = start_server()
    server.initialize(workspace)
    assert server.call("agentls.run", {"agent": "echo", "task": "t"})["status"] == "succeeded"
    assert len(server.call("agentls.history.list", {})["runs"]) == 1
    assert list(path.parent.glob("history.sqlite3.corrupt-*"))
    assert server.call("agentls.metrics")["history"]["degraded"] is None
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_d4_unwritable_data_dir_falls_back_to_memory(
    start_server: Start, workspace: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    server = start_server(env={"AGENTLS_DATA_DIR": str(blocker)})
    server.initialize(workspace)
    for _ in range(2):
        assert server.call("agentls.run", {"agent": "echo", "task": "t"})["status"] == "succeeded"
    assert len(server.call("agentls.history.list", {})["runs"]) == 2
    assert server.call("agentls.metrics")["history"]["degraded"]
    assert server.stderr().count("keeping runs in memory only") == 1
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_d5_two_servers_on_one_workspace(start_server: Start, workspace: Path) -> None:
    one, two = start_server(), start_server()
    one.initialize(workspace)
    two.initialize(workspace)
    ids = []
    for i in range(8):
        ids.append((one, one.command("agentls.run", {"agent": "chunks", "task": f"one {i}"})))
        ids.append((two, two.command("agentls.run", {"agent": "chunks", "task": f"two {i}"})))
    for server, rid in ids:
        assert server.result(rid, 30)["status"] == "succeeded"
    for server in (one, two):
        runs = server.call("agentls.history.list", {"limit": 100})["runs"]
        assert len(runs) == 16 and len({r["id"] for r in runs}) == 16
        assert server.call("agentls.metrics")["history"]["degraded"] is None
    for server in (one, two):
        assert server.problems(canaries=(CANARY,)) == []
        assert server.shutdown_and_exit() == 0
