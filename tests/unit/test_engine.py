"""The execution engine, driving real command agents (tests/fakes/agent_commands.py).

A small scripted backend is used only where a command cannot produce the event (usage reports,
an unexpected exception, exact multi-byte chunks).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentls.backends.base import BackendEvent, BackendRequest, TextDelta, Usage
from agentls.backends.command import CommandBackend
from agentls.config import BackendConfig
from agentls.errors import AgentlsError, Overloaded
from agentls.execution.engine import ExecutionEngine, RunJob
from agentls.execution.records import RunRecord

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "agent_commands.py"


def command(mode: str, *args: str) -> CommandBackend:
    return CommandBackend(
        BackendConfig(name="local", kind="command", argv=(sys.executable, str(FAKES), mode, *args))
    )


class ScriptedBackend:
    """Yields fixed events, then optionally raises."""

    name = "scripted"

    def __init__(self, events: list[BackendEvent], error: BaseException | None = None) -> None:
        self.events = events
        self.error = error

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        for event in self.events:
            await asyncio.sleep(0)
            yield event
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        pass


_ids = iter(range(1_000_000))


def job(
    backend: Any, *, timeout: float = 30.0, max_output_bytes: int = 1_000_000, run_id: str = ""
) -> RunJob:
    rid = run_id or f"run-{next(_ids)}"
    return RunJob(
        id=rid,
        agent="reviewer",
        task="look",
        backend=backend,
        backend_name="local",
        model="m",
        request=BackendRequest(run_id=rid, system="sys", user="task"),
        timeout=timeout,
        max_output_bytes=max_output_bytes,
        manifest=[{"path": "a.py", "status": "included"}],
        workspace="/ws",
    )


class Recorder:
    """An observer that records every call, and the order of events across runs."""

    def __init__(self, log: list[tuple[str, Any]] | None = None) -> None:
        self.log = log if log is not None else []
        self.running = 0
        self.max_running = 0

    def started(self, run_id: str) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.log.append(("started", run_id))

    def output(self, run_id: str, seq: int, text: str) -> None:
        self.log.append(("output", (run_id, seq, text)))

    def finished(self, record: RunRecord) -> None:
        if any(e == ("started", record.id) for e in self.log):
            self.running -= 1
        self.log.append(("finished", record))


class Exploding:
    def started(self, run_id: str) -> None:
        raise RuntimeError("observer bug")

    def output(self, run_id: str, seq: int, text: str) -> None:
        raise RuntimeError("observer bug")

    def finished(self, record: RunRecord) -> None:
        raise RuntimeError("observer bug")


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for_pids(pidfile: Path) -> list[int]:
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().endswith("\n"):
            return [int(p) for p in pidfile.read_text().split()]
        await asyncio.sleep(0.01)
    raise AssertionError("no pid file")


async def test_successful_run_streams_in_order_and_records_once() -> None:
    log: list[tuple[str, Any]] = []
    engine = ExecutionEngine(
        max_concurrent=2, max_queued=4, on_finished=lambda r: log.append(("history", r))
    )
    handle = engine.submit(job(command("chunks", "4", "0.05")), Recorder(log))
    assert handle.status == "queued"
    record = await handle.wait()
    assert record.status == "succeeded" and record.error is None
    assert record.output == "".join(f"chunk-{i}\n" for i in range(4))
    assert record.agent == "reviewer" and record.backend == "local" and record.model == "m"
    assert record.manifest == [{"path": "a.py", "status": "included"}]
    assert record.started_at == handle.submitted_at and record.duration_ms > 100
    outputs = [e[1] for e in log if e[0] == "output"]
    assert [seq for _, seq, _ in outputs] == list(range(len(outputs)))
    assert "".join(text for _, _, text in outputs) == record.output
    kinds = [e[0] for e in log]
    assert kinds[0] == "started" and kinds[-2:] == ["history", "finished"]
    assert kinds.count("history") == 1
    assert handle.status == "succeeded" and handle.output_chars == len(record.output)
    assert engine.get(handle.id) is None and engine.active() == []
    assert await handle.wait() is record


async def test_backend_failure_keeps_partial_output() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    record = await engine.submit(job(command("fail", "3"))).wait()
    assert record.status == "failed"
    assert record.output == "some output first\n"
    assert "exited with code 3" in (record.error or "")
    assert (record.error or "").endswith("the model is unavailable")


async def test_missing_program_is_a_failed_run() -> None:
    backend = CommandBackend(BackendConfig(name="x", kind="command", argv=("agentls-nope-xyz",)))
    record = await ExecutionEngine(max_concurrent=1, max_queued=1).submit(job(backend)).wait()
    assert (record.status, record.error) == ("failed", "command not found: agentls-nope-xyz")


async def test_timeout_keeps_partial_output_and_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    started = time.monotonic()
    record = await engine.submit(job(command("family", str(pidfile)), timeout=3)).wait()
    assert record.status == "timed_out"
    assert record.error == "timed out after 3 s"
    assert record.output.startswith("ready\ntick 0\n")
    assert time.monotonic() - started < 15  # a hang bound: the family runs forever
    pids = await wait_for_pids(pidfile)
    assert all(is_gone(p) for p in pids)


async def test_output_over_the_cap_fails_and_keeps_exactly_the_cap() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    started = time.monotonic()
    record = await engine.submit(job(command("flood"), max_output_bytes=300_000)).wait()
    assert record.status == "failed"
    assert record.error == "output exceeded the limit of 300000 bytes; the rest was discarded"
    assert record.output == "x" * 300_000
    assert time.monotonic() - started < 30  # a hang bound: the flood never ends by itself


async def test_output_cap_never_splits_a_character() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    backend = ScriptedBackend([TextDelta("aé"), TextDelta("éé")])
    record = await engine.submit(job(backend, max_output_bytes=6)).wait()
    assert record.status == "failed"
    assert record.output == "aéé"  # 5 bytes: the next "é" would need 7


async def test_empty_chunks_take_no_seq_number() -> None:
    """Observers get ``seq`` 0, 1, 2... with no gap and no empty piece, whatever the backend yields
    (an empty delta: a provider's keep-alive, a role-only chunk)."""
    log: list[tuple[str, Any]] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    backend = ScriptedBackend(
        [TextDelta(""), TextDelta("a"), TextDelta(""), TextDelta(""), TextDelta("b"), TextDelta("")]
    )
    handle = engine.submit(job(backend), Recorder(log))
    record = await handle.wait()
    assert record.status == "succeeded" and record.output == "ab"
    outputs = [e[1] for e in log if e[0] == "output"]
    assert [(seq, text) for _, seq, text in outputs] == [(0, "a"), (1, "b")]
    assert handle.output_chars == 2


async def test_usage_reports_are_merged() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    backend = ScriptedBackend(
        [Usage(prompt_tokens=12), TextDelta("hi"), Usage(completion_tokens=3)]
    )
    record = await engine.submit(job(backend)).wait()
    assert record.usage == {"prompt_tokens": 12, "completion_tokens": 3}
    plain = await engine.submit(job(ScriptedBackend([TextDelta("x")]))).wait()
    assert plain.usage is None


async def test_unexpected_exception_is_logged_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    backend = ScriptedBackend([TextDelta("so far")], RuntimeError("boom sk-canary-secret-123"))
    with caplog.at_level(logging.ERROR, logger="agentls.execution.engine"):
        record = await engine.submit(job(backend)).wait()
    assert record.status == "failed"
    assert record.error == "internal error; see the server log"
    assert record.output == "so far"
    assert "canary" not in repr(record.to_dict())
    assert any("failed unexpectedly" in r.getMessage() for r in caplog.records)


async def test_observer_errors_never_break_a_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RunRecord] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=1, on_finished=seen.append)
    with caplog.at_level(logging.ERROR, logger="agentls.execution.engine"):
        record = await engine.submit(job(command("chunks", "2", "0")), Exploding()).wait()
    assert record.status == "succeeded" and record.output == "chunk-0\nchunk-1\n"
    assert seen == [record]
    assert sum("observer failed" in r.getMessage() for r in caplog.records) >= 3


async def test_on_finished_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(record: RunRecord) -> None:
        raise OSError("disk gone")

    engine = ExecutionEngine(max_concurrent=1, max_queued=1, on_finished=broken)
    record = await engine.submit(job(ScriptedBackend([TextDelta("x")]))).wait()
    assert record.status == "succeeded"
    assert any("recording run" in r.getMessage() for r in caplog.records)


async def test_concurrency_limit_and_queue_order() -> None:
    log: list[tuple[str, Any]] = []
    recorder = Recorder(log)
    engine = ExecutionEngine(max_concurrent=2, max_queued=10)
    handles = [engine.submit(job(command("chunks", "3", "0.05")), recorder) for _ in range(5)]
    assert [r["status"] for r in engine.active()] == ["queued"] * 5
    await asyncio.sleep(0.3)
    statuses = [r["status"] for r in engine.active()]
    assert statuses.count("running") == 2
    records = await asyncio.gather(*(h.wait() for h in handles))
    assert all(r.status == "succeeded" for r in records)
    assert recorder.max_running == 2
    starts = [e[1] for e in log if e[0] == "started"]
    assert starts == [h.id for h in handles]  # first come, first served


async def test_overloaded_when_the_queue_is_full() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=2)
    handles = [engine.submit(job(command("hang"))) for _ in range(3)]  # 1 runs, 2 wait
    with pytest.raises(Overloaded, match="too many runs are waiting"):
        engine.submit(job(command("hang")))
    assert engine.cancel(handles[2].id)
    extra = engine.submit(job(command("hang")))  # room again
    await engine.shutdown(timeout=3)
    for h in [*handles, extra]:
        assert (await h.wait()).status == "cancelled"


async def test_cancel_a_queued_run_it_never_starts() -> None:
    recorder = Recorder()
    finished: list[RunRecord] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=5, on_finished=finished.append)
    first = engine.submit(job(command("hang")), recorder)
    queued = engine.submit(job(command("hang")), recorder)
    await asyncio.sleep(0.3)
    assert engine.get(queued.id) is queued and queued.status == "queued"
    assert engine.cancel(queued.id) is True
    record = await asyncio.wait_for(queued.wait(), 10)  # a hang bound, not a timing
    assert record.status == "cancelled" and record.output == "" and record.duration_ms == 0
    assert ("started", queued.id) not in recorder.log
    assert engine.cancel(queued.id) is False  # already finished
    assert engine.cancel("no-such-run") is False
    assert first.status == "running"
    assert engine.cancel(first.id)
    first_record = await asyncio.wait_for(first.wait(), 10)
    assert first_record.status == "cancelled" and first_record.output == "partial\n"
    assert [r.id for r in finished] == [queued.id, first.id]


async def test_cancel_right_after_submit() -> None:
    finished: list[RunRecord] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=5, on_finished=finished.append)
    handle = engine.submit(job(command("hang")))
    assert engine.cancel(handle.id)  # the task has not taken a single step yet
    record = await handle.wait()
    assert record.status == "cancelled"
    assert finished == [record]
    assert engine.active() == []


class SlowCleanup:
    """A backend whose cleanup takes a while (closing a stream, waiting for a process to exit)."""

    name = "slow-cleanup"

    def __init__(self) -> None:
        self.cleanup_started = asyncio.Event()
        self.release = asyncio.Event()
        self.cleaned = False

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        try:
            yield TextDelta("partial")
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.cleanup_started.set()
            await self.release.wait()
            self.cleaned = True

    async def aclose(self) -> None:
        pass


async def test_a_second_cancel_does_not_interrupt_the_backends_cleanup() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    backend = SlowCleanup()
    handle = engine.submit(job(backend))
    for _ in range(1000):
        if handle.output_chars:
            break
        await asyncio.sleep(0)
    assert engine.cancel(handle.id)
    await asyncio.wait_for(backend.cleanup_started.wait(), 10)
    assert engine.cancel(handle.id)  # an impatient user clicks again while the run stops
    await asyncio.sleep(0)
    backend.release.set()
    record = await asyncio.wait_for(handle.wait(), 10)
    assert record.status == "cancelled" and record.output == "partial"
    assert backend.cleaned, "the second cancel interrupted the backend's cleanup"


async def test_cancel_a_running_run_kills_its_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    handle = engine.submit(job(command("family", str(pidfile))))
    pids = await wait_for_pids(pidfile)
    await asyncio.sleep(0.1)
    cancelled_at = time.monotonic()
    assert engine.cancel(handle.id)
    assert engine.cancel(handle.id)  # repeated while it stops: still True, no second blow
    record = await handle.wait()
    assert record.status == "cancelled" and record.output.startswith("ready\n")
    while not all(is_gone(p) for p in pids):
        assert time.monotonic() - cancelled_at < 10, "process group survived cancellation"
        await asyncio.sleep(0.02)


async def test_cancelling_a_waiter_does_not_cancel_the_run() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    handle = engine.submit(job(command("chunks", "3", "0.05")))
    waiter = asyncio.create_task(handle.wait())
    await asyncio.sleep(0.05)
    waiter.cancel()
    record = await handle.wait()
    assert record.status == "succeeded"


async def test_queue_time_does_not_count_toward_the_timeout() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=2)
    # The first run takes 4 s; the second's own 3.5 s is ample for a one-chunk child, so it
    # times out only if its time in the queue is counted.
    first = engine.submit(job(command("chunks", "16", "0.25")))
    second = engine.submit(job(command("chunks", "1", "0"), timeout=3.5))
    assert (await first.wait()).status == "succeeded"
    assert (await second.wait()).status == "succeeded"


async def test_shutdown_cancels_everything_and_refuses_new_runs(tmp_path: Path) -> None:
    engine = ExecutionEngine(max_concurrent=2, max_queued=5)
    pidfiles = [tmp_path / f"pids{i}" for i in range(2)]
    running = [engine.submit(job(command("family", str(p)))) for p in pidfiles]
    queued = engine.submit(job(command("hang")))
    pids = [pid for p in pidfiles for pid in await wait_for_pids(p)]
    started = time.monotonic()
    await engine.shutdown(timeout=20.0)
    assert time.monotonic() - started < 15  # ended by the kill, not by the wait's bound
    records = [await asyncio.wait_for(h.wait(), 10) for h in [*running, queued]]  # hang bound
    assert [r.status for r in records] == ["cancelled"] * 3
    for _ in range(500):  # killed, then reaped: 10 s only catches a hang
        if all(is_gone(p) for p in pids):
            break
        await asyncio.sleep(0.02)
    assert all(is_gone(p) for p in pids)
    with pytest.raises(AgentlsError, match="shutting down"):
        engine.submit(job(command("hang")))


async def test_duplicate_run_id_is_refused() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=2)
    engine.submit(job(command("hang"), run_id="same"))
    with pytest.raises(AgentlsError, match="already active"):
        engine.submit(job(command("hang"), run_id="same"))
    await engine.shutdown()


async def test_active_lists_queued_and_running_runs() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=2)
    a = engine.submit(job(command("hang")))
    b = engine.submit(job(command("hang")))
    await asyncio.sleep(0.4)
    active = engine.active()
    assert [(r["id"], r["status"]) for r in active] == [(a.id, "running"), (b.id, "queued")]
    assert active[0]["agent"] == "reviewer" and active[0]["output_chars"] == len("partial\n")
    assert active[0]["submitted_at"] <= time.time()
    await engine.shutdown()


async def test_refused_runs_are_recorded_and_observed_without_starting() -> None:
    recorded: list[RunRecord] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=0, on_finished=recorded.append)
    observer = Recorder()
    refused = replace(job(None), started_at=5.0)
    record = engine.refuse(refused, "backend 'x' is not trusted", observer)
    assert record.status == "failed" and record.error == "backend 'x' is not trusted"
    assert (record.started_at, record.duration_ms, record.output) == (5.0, 0.0, "")
    assert record.manifest == [{"path": "a.py", "status": "included"}]
    assert record.workspace == "/ws"
    assert recorded == [record]
    assert observer.log == [("finished", record)]
    assert engine.active() == []


async def test_secrets_in_the_output_are_redacted_and_counted_in_the_record() -> None:
    """A key the model repeats (split over chunks, as providers stream) never reaches history."""
    key = "AIza" + "SyD4v7Qx2Lm9Pk3Rt8Wn5Hb1Jc6Fg0Ze4Ua"
    url = "postgres://app:" + "s3cr3t-Pa55" + "@db/app"
    pieces = ["I found ", key[:10], key[10:] + "\n", f"and {url[:20]}", url[20:] + " ok"]
    log: list[tuple[str, Any]] = []
    stored: list[RunRecord] = []
    engine = ExecutionEngine(max_concurrent=1, max_queued=1, on_finished=stored.append)
    backend = ScriptedBackend([TextDelta(p) for p in pieces])
    record = await engine.submit(job(backend), Recorder(log)).wait()
    assert record.status == "succeeded"
    assert key not in record.output and "s3cr3t-Pa55" not in record.output
    assert record.output == (
        "I found [REDACTED:google_api_key]\nand postgres://app:[REDACTED:url_password]@db/app ok"
    )
    assert record.output_secrets == [
        {"line": 1, "kind": "google_api_key"},
        {"line": 2, "kind": "url_password"},
    ]
    assert stored == [record] and record.to_dict()["output_secrets"] == record.output_secrets
    # The editor saw the pieces as they came (it is the user's own screen).
    assert "".join(e[1][2] for e in log if e[0] == "output") == "".join(pieces)


async def test_clean_output_is_stored_as_it_came() -> None:
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    text = "token = tokenizer.next_token()\nsee https://example.com/a@b\n"
    record = await engine.submit(job(ScriptedBackend([TextDelta(text)]))).wait()
    assert record.output == text and record.output_secrets == []


async def test_a_long_output_is_scanned_off_the_loop_and_still_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past INLINE_SCAN_CHARS the scan runs in a thread; the record is the same either way."""
    import threading

    from agentls.execution import engine as engine_module

    threads: list[str] = []
    real = engine_module.redact_text

    def spy(text: str, marker: str | None = None) -> Any:
        threads.append(threading.current_thread().name)
        return real(text, marker)

    monkeypatch.setattr(engine_module, "redact_text", spy)
    key = "AIza" + "SyD4v7Qx2Lm9Pk3Rt8Wn5Hb1Jc6Fg0Ze4Ua"
    filler = "word " * (engine_module.INLINE_SCAN_CHARS // 5 + 10)
    pieces = [filler, f"\nleaked {key}\n", filler]
    engine = ExecutionEngine(max_concurrent=1, max_queued=1)
    handle = engine.submit(job(ScriptedBackend([TextDelta(p) for p in pieces])))
    record = await handle.wait()
    assert record.status == "succeeded"
    assert key not in record.output and "leaked [REDACTED:google_api_key]" in record.output
    assert record.output_secrets == [{"line": 2, "kind": "google_api_key"}]
    assert len(record.output) == len("".join(pieces)) - len(key) + len("[REDACTED:google_api_key]")
    assert engine.cancel(handle.id) is False
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
