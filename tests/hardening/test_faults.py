"""Catalogue F2, F3 and S7 at the stdio boundary: a fault inside one run stays inside it.

Agents that flood output, die by signal, hang past their timeout, fail, or spawn grandchildren;
an HTTP provider that echoes the API key, resets mid-stream or stalls. Each run ends with the
right status, the LSP stream stays clean, the event loop is never blocked (the servers run in
asyncio debug mode, see ``rawclient``), no child process survives, and the canary key appears in
no channel: LSP frames, stderr, the log file, the history database, pop-ups, child environments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.providers import FakeProvider, provider_error, reset_during, stall, status
from tests.hardening.conftest import CANARY
from tests.hardening.rawclient import RawServer, processes_with, wait_gone

Start = Callable[..., RawServer]


def _run(server: RawServer, agent: str, timeout: float = 30.0) -> dict[str, object]:
    result = server.call("agentls.run", {"agent": agent, "task": "t"}, timeout=timeout)
    assert isinstance(result, dict)
    return result


def test_f3_each_fault_stays_inside_its_run(
    start_server: Start, workspace: Path, mark: str
) -> None:
    server = start_server()
    server.initialize(workspace)
    flood = _run(server, "flood")
    assert flood["status"] == "failed" and "exceeded the limit" in str(flood["error"])
    assert len(str(flood["output"])) == 8 * 1024 * 1024  # kept up to the cap
    sig = _run(server, "signal")
    assert sig["status"] == "failed" and "SIGTERM" in str(sig["error"])
    fail = _run(server, "fail")
    assert fail["status"] == "failed" and "the model is unavailable" in str(fail["error"])
    started = time.monotonic()
    hang = _run(server, "hang")
    assert hang["status"] == "timed_out" and hang["output"] == "partial\n"
    assert time.monotonic() - started < 25  # its 2 s timeout ended it, not our 30 s wait
    orphans = _run(server, "orphans")  # its grandchild writes forever after it exits
    assert orphans["status"] == "succeeded"
    assert wait_gone(mark, 10.0, exclude=(server.pid,)) == []
    # Between and after the faults the session is fine and the stream is clean.
    assert _run(server, "echo")["status"] == "succeeded"
    statuses = [r["status"] for r in server.call("agentls.history.list", {})["runs"]]
    assert statuses == ["succeeded", "succeeded", "timed_out", "failed", "failed", "failed"]
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_s7_canary_key_in_no_channel(
    start_server: Start, workspace: Path, tmp_path: Path, mark: str
) -> None:
    log_file = tmp_path / "agentls.log"
    server = start_server(args=("--log-file", str(log_file), "--log-level", "DEBUG"))
    server.initialize(workspace)
    leak = _run(server, "leak")  # the agent prints $OPENAI_API_KEY on stderr and fails
    assert leak["status"] == "failed"
    env_run = _run(server, "env")  # what a child sees
    assert "HARDENING_MARK" in str(env_run["output"])
    history_path = Path(server.call("agentls.metrics")["history"]["path"])
    assert server.shutdown_and_exit() == 0
    assert CANARY not in str(leak["error"]) and "[redacted]" in str(leak["error"])
    assert CANARY not in str(env_run["output"]) and "OPENAI_API_KEY" not in str(env_run["output"])
    assert server.problems(canaries=(CANARY,)) == []
    assert CANARY not in log_file.read_text()
    for suffix in ("", "-wal"):
        store = Path(f"{history_path}{suffix}")
        if store.exists():
            assert CANARY.encode() not in store.read_bytes()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider("openai") as fake:
        yield fake


def _with_http_backend(workspace: Path, provider: FakeProvider) -> None:
    toml = workspace / "agentls.toml"
    toml.write_text(
        toml.read_text()
        + "\n[backends.http]\n"
        + 'kind = "openai"\n'
        + f'base_url = "{provider.base_url}"\n'
        + 'api_key_env = "OPENAI_API_KEY"\n'
        + 'model = "fake-model"\n'
        + "max_retries = 1\n"
        + "read_timeout = 1.0\n"
    )
    (workspace / ".agents" / "http.md").write_text("---\nbackend: http\n---\nTask: {{task}}\n")


def test_f2_http_faults_and_the_key(
    start_server: Start, workspace: Path, provider: FakeProvider, tmp_path: Path
) -> None:
    _with_http_backend(workspace, provider)
    log_file = tmp_path / "agentls.log"
    server = start_server(args=("--log-file", str(log_file), "--log-level", "DEBUG"))
    server.initialize(workspace)
    echo = f"Incorrect API key provided: {CANARY}"
    provider.script(status(401, {"error": {"type": "invalid_request_error", "message": echo}}))
    wrong_key = _run(server, "http")
    assert wrong_key["status"] == "failed" and "OPENAI_API_KEY" in str(wrong_key["error"])
    provider.script(provider_error(1, echo))
    mid = _run(server, "http")
    assert mid["status"] == "failed" and mid["output"] == "Hello"
    provider.script(reset_during(2))
    reset = _run(server, "http")
    assert reset["status"] == "failed" and reset["output"] == "Hello, "
    provider.script(stall(1))  # then silence: the read timeout ends it
    stalled = _run(server, "http")
    assert stalled["status"] == "failed"
    # Cancel mid-stream: the provider sees the connection go.
    provider.script(stall(1, hold=30))
    since = len(server.messages)  # earlier runs also said "Hello": wait for this one's
    rid = server.command("agentls.run", {"agent": "http", "task": "t"})
    server.wait_for(lambda m: m.get("method") == "agentls/output", since=since)
    before = provider.disconnects
    server.notify("$/cancelRequest", {"id": rid})
    assert server.response(rid, 10.0)["error"]["code"] == -32800
    assert provider.wait_disconnect(10.0, count=before + 1), (before, provider.disconnects)
    last = _run(server, "http")
    assert last["status"] == "succeeded", (last, provider.requests[-3:])
    history_path = Path(server.call("agentls.metrics")["history"]["path"])
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0
    assert provider.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # really sent
    assert CANARY not in log_file.read_text()
    assert CANARY.encode() not in history_path.read_bytes()
    wal = Path(f"{history_path}-wal")
    assert not wal.exists() or CANARY.encode() not in wal.read_bytes()


def test_f4_loop_stays_responsive_during_heavy_runs(
    start_server: Start, workspace: Path, mark: str
) -> None:
    """Trivial requests are answered while two floods and six chatty runs are going.

    How fast they are answered is a figure for ``agentls bench`` (the streaming scenario); here
    each must be answered well within a hang bound while the runs are still in flight.
    """
    server = start_server()
    server.initialize(workspace)
    agents = ["flood", "slow", "slow", "slow"] * 2
    runs = [server.command("agentls.run", {"agent": a, "task": "t"}) for a in agents]
    server.wait_for(lambda m: len(server.notifications("agentls/runStarted")) >= 8, 10)
    latencies = []
    for _ in range(40):
        started = time.monotonic()
        status = server.call("agentls.status", timeout=5)  # a hang bound
        latencies.append(time.monotonic() - started)
        time.sleep(0.02)
    latencies.sort()
    print(f"F4/N1: status p50 {latencies[20] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    # The slow runs take 30 s: they were all still streaming while status was answered.
    slow_runs = [rid for rid, agent in zip(runs, agents, strict=True) if agent == "slow"]
    assert all(not server.responses_to(rid) for rid in slow_runs)
    assert len(status["runs"]) >= len(slow_runs), status
    for rid in runs:
        server.notify("$/cancelRequest", {"id": rid})
    for rid in runs:
        server.response(rid, 5)
    assert wait_gone(mark, 10.0, exclude=(server.pid,)) == []
    assert processes_with(mark, exclude=(server.pid,)) == []
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0
