"""Finding 8 and issue 14 section 4: what a run's children can do to the machine.

A backend's grandchild that calls ``setsid`` leaves the run's process group; it must still be
killed when the run is cancelled and when the server exits, and reaped (no zombie left). A child
that hits a resource limit (memory, CPU time, open files) fails its run with a message naming the
limit. Through the real server where the server is what changed (subreaper, run cancellation,
exit); the CPU and file limits through the backend alone.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentls.backends.base import BackendError, BackendRequest
from agentls.backends.command import CommandBackend
from agentls.config import BackendConfig
from tests.security.proc_helpers import (
    AGENTS,
    Server,
    exists,
    kill_pids,
    read_pids,
    running,
    toml_list,
    wait_until,
    write,
)

HANG_GUARD = 20.0
"""Seconds after which a process that should be gone is a failure (it would never go)."""


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids the test started indirectly; killed at teardown whatever happened."""
    pids: list[int] = []
    yield pids
    kill_pids(pids)


def _server(tmp_path: Path, backend: str, *args: str, extra: str = "") -> tuple[Server, Path]:
    ws = tmp_path / "ws"
    write(ws, ".agents/job.md", "---\ndescription: job\ntimeout: 120\n---\nDo {{task}}\n")
    server = Server(tmp_path / "srv")
    server.user_config(
        f'default_backend = "{backend}"\n[backends.{backend}]\nkind = "command"\n'
        f"argv = {toml_list([sys.executable, str(AGENTS), *args])}\n{extra}"
    )
    return server, ws


def _start_family(server: Server, ws: Path, pidfile: Path, leftovers: list[int]) -> list[int]:
    server.initialize(ws, options={"trusted": False})
    server.request(
        "workspace/executeCommand",
        {"command": "agentls.run", "arguments": [{"agent": "job", "task": "x"}]},
    )
    pids = read_pids(pidfile)
    leftovers.extend(pids)
    assert all(running(p) for p in pids)
    return pids


def test_setsid_grandchild_is_killed_and_reaped_at_cancel(
    tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "family.pids"
    server, ws = _server(tmp_path, "family", "setsid-family", str(pidfile))
    try:
        program, grandchild = _start_family(server, ws, pidfile, leftovers)
        run_id = server.wait_for(lambda m: m.get("method") == "agentls/runStarted")["params"]["id"]
        assert server.call("agentls.runs.cancel", {"id": run_id}) == {"cancelled": True}
        assert wait_until(lambda: not running(grandchild), HANG_GUARD), "setsid grandchild lives"
        # Killed is not enough: the server adopted it (subreaper) and must reap it.
        assert wait_until(lambda: not exists(grandchild), HANG_GUARD), "left as a zombie"
        assert not running(program)
        assert server.proc.poll() is None  # the server goes on serving
        assert server.call("agentls.status")["runs"] == []
    finally:
        server.kill()


def test_setsid_grandchild_is_killed_at_server_exit(tmp_path: Path, leftovers: list[int]) -> None:
    pidfile = tmp_path / "family.pids"
    server, ws = _server(tmp_path, "family", "setsid-family", str(pidfile))
    try:
        program, grandchild = _start_family(server, ws, pidfile, leftovers)
        server.shutdown_and_exit()
    finally:
        server.kill()
    assert wait_until(lambda: not running(grandchild), HANG_GUARD), "setsid grandchild outlived"
    assert not running(program)


def test_memory_hog_fails_its_run_naming_the_limit(tmp_path: Path) -> None:
    server, ws = _server(tmp_path, "hog", "hog", "1024", extra="max_memory_mb = 200\n")
    try:
        server.initialize(ws, options={"trusted": False})
        result = server.call("agentls.run", {"agent": "job", "task": "x"})
        assert result["status"] == "failed", result
        assert "max_memory_mb (200 MiB)" in result["error"]
        assert "allocated" not in result["output"]
    finally:
        server.kill()


def test_default_child_limits_come_from_the_limits_table(tmp_path: Path) -> None:
    """``[limits] max_memory_mb`` applies to a backend that sets none; a small hog still runs."""
    server, ws = _server(tmp_path, "hog", "hog", "1024")
    server.user_config(
        (server.config_home / "agentls" / "config.toml").read_text()
        + "[limits]\nmax_memory_mb = 200\n"
    )
    try:
        server.initialize(ws, options={"trusted": False})
        result = server.call("agentls.run", {"agent": "job", "task": "x"})
        assert result["status"] == "failed" and "max_memory_mb" in result["error"], result
    finally:
        server.kill()


def _run(config: BackendConfig) -> str:
    async def go() -> str:
        out = []
        async for event in CommandBackend(config).stream(BackendRequest("r1", "", "x")):
            out.append(getattr(event, "text", ""))
        return "".join(out)

    return asyncio.run(go())


def _config(*args: str, **limits: int) -> BackendConfig:
    return BackendConfig(
        name="t", kind="command", argv=(sys.executable, str(AGENTS), *args), **limits
    )


def test_cpu_limit_ends_a_spinning_child_naming_the_limit() -> None:
    with pytest.raises(BackendError) as failure:
        _run(_config("spin", max_cpu_seconds=1))
    assert "max_cpu_seconds (1 s of CPU time)" in failure.value.message
    assert "SIGXCPU" in failure.value.message


def test_open_files_limit_names_the_limit() -> None:
    assert _run(_config("files", "64", max_open_files=256)) == "opened 64\n"
    with pytest.raises(BackendError) as failure:
        _run(_config("files", "64", max_open_files=32))
    assert "max_open_files (32 files)" in failure.value.message


def test_limits_reach_the_program_itself(tmp_path: Path) -> None:
    """The wrapper replaces itself with the program, whose own limits are the configured ones
    (soft for descriptors and address space, hard for processes: it cannot raise them)."""
    script = tmp_path / "limits.py"
    script.write_text(
        "import os, resource\n"
        "print(os.getppid() != 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0],"
        " resource.getrlimit(resource.RLIMIT_AS)[0] // (1024 * 1024),"
        " resource.getrlimit(resource.RLIMIT_NPROC)[1])\n"
    )
    config = BackendConfig(
        name="t",
        kind="command",
        argv=(sys.executable, str(script)),
        max_open_files=100,
        max_memory_mb=4096,
        max_processes=5000,
    )
    has_parent, files, memory, processes = _run(config).split()
    assert (has_parent, files, memory, processes) == ("True", "100", "4096", "5000")
