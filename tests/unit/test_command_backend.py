"""The command backend against real child processes (tests/fakes/agent_commands.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentls.backends.base import BackendError, BackendRequest, TextDelta
from agentls.backends.command import CommandBackend, child_env
from agentls.backends.factory import BackendFactory
from agentls.config import BackendConfig

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "agent_commands.py"


def argv(mode: str, *args: str) -> tuple[str, ...]:
    return (sys.executable, str(FAKES), mode, *args)


def backend(*argv_: str, env: tuple[str, ...] = (), model: str | None = None) -> CommandBackend:
    return CommandBackend(
        BackendConfig(name="local", kind="command", argv=argv_, env=env, model=model)
    )


def request(user: str = "hello", *, system: str = "", cwd: str | None = None) -> BackendRequest:
    return BackendRequest(run_id="run-1", system=system, user=user, cwd=cwd)


async def collect(b: CommandBackend, req: BackendRequest) -> str:
    parts = []
    async for event in b.stream(req):
        assert isinstance(event, TextDelta)
        parts.append(event.text)
    return "".join(parts)


def is_gone(pid: int) -> bool:
    """Dead, or a zombie waiting for a parent that is not us (it runs nothing any more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def assert_gone_within(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(is_gone(p) for p in pids):
            return
        await asyncio.sleep(0.02)
    alive = [p for p in pids if not is_gone(p)]
    raise AssertionError(f"processes still running after {seconds} s: {alive}")


async def read_pids(pidfile: Path) -> list[int]:
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().endswith("\n"):
            return [int(p) for p in pidfile.read_text().split()]
        await asyncio.sleep(0.01)
    raise AssertionError("the fake agent never wrote its pids")


async def test_chunks_stream_in_order_as_they_arrive() -> None:
    b = backend(*argv("chunks", "5", "0.1"))
    arrivals: list[tuple[float, str]] = []
    async for event in b.stream(request()):
        assert isinstance(event, TextDelta)
        arrivals.append((time.monotonic(), event.text))
    text = "".join(t for _, t in arrivals)
    assert text == "".join(f"chunk-{i}\n" for i in range(5))
    # Streamed, not buffered until exit: the first piece came well before the last.
    assert len(arrivals) >= 3
    assert arrivals[-1][0] - arrivals[0][0] > 0.25


async def test_prompt_with_shell_metacharacters_is_passed_literally(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = (
        f"$(touch {marker}); `touch {marker}` | rm -rf ~ && echo $HOME > {marker}\n"
        "'single' \"double\" \\ back\\slash -- --help -rf\n\x01 tab\there é 中 😀"
    )
    b = backend(*argv("echo", f"; touch {marker}", "$(id)"))
    req = request(nasty, system="system part $PATH")
    assert await collect(b, req) == req.prompt
    assert req.prompt.startswith("system part $PATH\n\n$(touch")
    assert not marker.exists()


async def test_large_prompt_round_trips_without_pipe_deadlock() -> None:
    big = "".join(f"line {i} {'x' * 90}\n" for i in range(40_000))  # about 4 MB
    b = backend(*argv("echo"))
    out = await asyncio.wait_for(collect(b, request(big)), 20)
    assert out == big


async def test_child_that_never_reads_stdin_still_succeeds() -> None:
    b = backend(*argv("no-stdin"))
    out = await asyncio.wait_for(collect(b, request("y" * 3_000_000)), 10)
    assert out == "ok\n"


async def test_split_utf8_is_decoded_incrementally_and_bad_bytes_replaced() -> None:
    out = await collect(backend(*argv("split-utf8")), request())
    assert out == "é€😀\ufffd"


async def test_nonzero_exit_names_program_code_and_stderr_tail() -> None:
    program = sys.executable
    b = backend(*argv("fail", "3"))
    with pytest.raises(BackendError) as info:
        await collect(b, request())
    message = info.value.message
    assert message.startswith(f"{program} exited with code 3: ")
    assert message.endswith("the model is unavailable")
    # stderr was about 12 KB: only its tail is in the message.
    assert len(message) < len(program) + 2100


async def test_output_before_a_failure_is_still_streamed() -> None:
    parts: list[str] = []
    with pytest.raises(BackendError):
        async for event in backend(*argv("fail", "7")).stream(request()):
            assert isinstance(event, TextDelta)
            parts.append(event.text)
    assert "".join(parts) == "some output first\n"


async def test_killed_by_signal_is_reported_by_name() -> None:
    with pytest.raises(BackendError, match=r"was killed by signal SIGTERM"):
        await collect(backend(*argv("signal")), request())


async def test_missing_executable() -> None:
    with pytest.raises(BackendError) as info:
        await collect(backend("agentls-no-such-program-xyz", "-p"), request())
    assert info.value.message == "command not found: agentls-no-such-program-xyz"


async def test_file_without_execute_permission(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(BackendError) as info:
        await collect(backend(str(script)), request())
    assert info.value.message == f"command not found: {script} (not executable)"


async def test_runs_in_the_requested_directory(tmp_path: Path) -> None:
    assert await collect(backend(*argv("cwd")), request(cwd=str(tmp_path))) == os.path.realpath(
        tmp_path
    )
    with pytest.raises(BackendError, match="working directory not found"):
        await collect(backend(*argv("cwd")), request(cwd=str(tmp_path / "missing")))


async def test_env_has_no_secrets_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-openai-0001")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_canary0002")
    monkeypatch.setenv("MY_AGENT_KEY", "canary-named-0003")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    out = await collect(
        backend(*argv("env"), env=("MY_AGENT_KEY", "NOT_SET_ANYWHERE"), model="m-1"), request()
    )
    env = json.loads(out)
    assert "canary" not in json.dumps({k: v for k, v in env.items() if k != "MY_AGENT_KEY"})
    assert env["MY_AGENT_KEY"] == "canary-named-0003"
    assert "NOT_SET_ANYWHERE" not in env
    assert env["AGENTLS_RUN_ID"] == "run-1"
    assert env["AGENTLS_MODEL"] == "m-1"
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"


def test_child_env_is_an_allow_list() -> None:
    base = {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LANG": "C",
        "LC_CTYPE": "C",
        "TZ": "UTC",
        "ANTHROPIC_API_KEY": "sk-ant-canary",
        "AWS_SECRET_ACCESS_KEY": "canary",
        "SLACK_TOKEN": "canary",
        "PYTHONPATH": "/evil",
        "LD_PRELOAD": "/evil.so",
        "PASSED": "yes",
    }
    config = BackendConfig(name="c", kind="command", argv=("x",), env=("PASSED", "MISSING"))
    env = child_env(config, "r1", None, base)
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LANG": "C",
        "LC_CTYPE": "C",
        "TZ": "UTC",
        "PASSED": "yes",
        "AGENTLS_RUN_ID": "r1",
    }
    assert child_env(config, "r1", "llama", base)["AGENTLS_MODEL"] == "llama"


async def test_secret_echoed_on_stderr_is_scrubbed_from_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSED_SECRET", "canary-value-777")
    script = tmp_path / "leaky.py"
    script.write_text(
        "import os, sys\nsys.stderr.write('auth failed for ' + os.environ['PASSED_SECRET'])\n"
        "sys.exit(1)\n"
    )
    b = backend(sys.executable, str(script), env=("PASSED_SECRET",))
    with pytest.raises(BackendError) as info:
        await collect(b, request())
    assert "canary-value-777" not in info.value.message
    assert "auth failed for [redacted]" in info.value.message


async def test_cancellation_kills_the_process_group_with_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    b = backend(*argv("family", str(pidfile)))
    ready = asyncio.Event()
    seen: list[str] = []

    async def consume() -> None:
        async for event in b.stream(request()):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
            if "ready" in "".join(seen):
                ready.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(ready.wait(), 10)
    pids = await read_pids(pidfile)
    assert len(pids) == 2 and not any(is_gone(p) for p in pids)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_gone_within(pids, 10.0 - (time.monotonic() - cancelled_at))


async def test_closing_the_stream_early_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    stream = backend(*argv("family", str(pidfile))).stream(request())
    first = await asyncio.wait_for(stream.__anext__(), 10)
    assert isinstance(first, TextDelta)
    pids = await read_pids(pidfile)
    await stream.aclose()  # type: ignore[attr-defined]
    await assert_gone_within(pids, 10.0)


async def test_sigterm_ignoring_child_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    stream = backend(*argv("ignore-term", str(pidfile))).stream(request())
    await asyncio.wait_for(stream.__anext__(), 10)
    pids = await read_pids(pidfile)
    started = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 15  # a hang bound: the grace is 1 s, the child ignores TERM
    await assert_gone_within(pids, 10.0)


async def test_a_sigterm_ignoring_grandchild_is_killed_after_the_grace(tmp_path: Path) -> None:
    """asyncio kills the direct child when its transport closes; only the group's SIGKILL after
    the grace reaches a grandchild that ignores SIGTERM."""
    pidfile = tmp_path / "pids"
    stream = backend(*argv("ignore-term-family", str(pidfile))).stream(request())
    await asyncio.wait_for(stream.__anext__(), 10)
    pids = await read_pids(pidfile)
    assert len(pids) == 2
    await stream.aclose()  # type: ignore[attr-defined]
    await assert_gone_within(pids, 10.0)


async def test_grandchild_holding_stdout_does_not_hang_the_run() -> None:
    started = time.monotonic()
    out = await asyncio.wait_for(collect(backend(*argv("orphan-stdout")), request()), 10)
    assert out == "parent done\n"
    assert time.monotonic() - started < 15  # the grandchild would have held stdout for 30 s


async def test_grandchild_writing_forever_is_cut_off_after_the_program_exits(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pid"
    b = backend(*argv("orphan-writer", str(pidfile)))
    out = await asyncio.wait_for(collect(b, request()), 30)  # the grandchild writes forever
    assert out.startswith(("parent done\n", "noise\n")) and "parent done\n" in out
    await assert_gone_within(await read_pids(pidfile), 10.0)


async def test_normal_exit_also_stops_leftover_grandchildren(tmp_path: Path) -> None:
    script = tmp_path / "spawner.py"
    pidfile = tmp_path / "pid"
    script.write_text(
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'],\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{p.pid}}\\n')\n"
        "print('spawned')\n"
    )
    out = await asyncio.wait_for(collect(backend(sys.executable, str(script)), request()), 10)
    assert out == "spawned\n"
    await assert_gone_within(await read_pids(pidfile), 10.0)


async def test_flooding_child_can_be_stopped_by_its_consumer() -> None:
    stream = backend(*argv("flood")).stream(request())
    received = 0
    async for event in stream:
        assert isinstance(event, TextDelta)
        received += len(event.text)
        if received > 2_000_000:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert received > 2_000_000


async def test_concurrent_runs_are_independent() -> None:
    b = backend(*argv("echo"))
    outs = await asyncio.gather(*(collect(b, request(f"prompt {i}")) for i in range(8)))
    assert outs == [f"prompt {i}" for i in range(8)]
    await b.aclose()
    await b.aclose()  # idempotent


def test_a_command_backend_needs_a_program() -> None:
    with pytest.raises(BackendError, match="needs a program"):
        CommandBackend(BackendConfig(name="empty", kind="command"))


# -- the backend factory ------------------------------------------------------------------------


async def test_factory_reuses_an_instance_while_the_config_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []

    async def record_close(self: CommandBackend) -> None:
        closed.append(self.name)

    monkeypatch.setattr(CommandBackend, "aclose", record_close)
    factory = BackendFactory()
    config = BackendConfig(name="local", kind="command", argv=argv("echo"))
    first = factory.get(config)
    assert isinstance(first, CommandBackend)
    assert factory.get(BackendConfig(name="local", kind="command", argv=argv("echo"))) is first
    other = factory.get(BackendConfig(name="other", kind="command", argv=argv("echo")))
    assert other is not first and closed == []

    changed = factory.get(BackendConfig(name="local", kind="command", argv=argv("cwd")))
    assert changed is not first
    await asyncio.sleep(0)  # the replaced instance is closed in the background
    assert closed == ["local"]
    # the new config is the one used (no cwd given: a neutral folder, not ours)
    assert Path(await collect(changed, request())).name.startswith("agentls-run-")

    await factory.aclose()
    assert sorted(closed) == ["local", "local", "other"]
    assert factory.get(config) is not first  # usable again after aclose


def test_factory_reports_unavailable_http_kinds() -> None:
    factory = BackendFactory()
    for kind, module in (
        ("openai", "agentls.backends.openai"),
        ("anthropic", "agentls.backends.anthropic"),
    ):
        config = BackendConfig(name=f"b-{kind}", kind=kind, model="m")  # type: ignore[arg-type]
        if importlib.util.find_spec(module) is None:
            with pytest.raises(BackendError) as info:
                factory.get(config)
            assert info.value.message == f"backend kind {kind!r} is not available"
        else:
            assert factory.get(config).name == f"b-{kind}"


def test_factory_rejects_an_unknown_kind() -> None:
    config = BackendConfig(name="odd", kind="carrier-pigeon", argv=("x",))  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="unknown backend kind 'carrier-pigeon'"):
        BackendFactory().get(config)
