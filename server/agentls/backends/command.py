"""The ``command`` backend: a local program that reads the prompt on stdin and writes the answer.

This module owns the life of one agent child process per run: how it is started (an argv list,
never a shell; a new session so the whole process group can be signalled; pipes on all three
standard streams so the child never inherits fd 1, which is the LSP stream), which environment it
sees (``child_env``: a safe base set plus the names the configuration lists, so API keys reach a
child only when the user asked for it), how its output is streamed (an incremental UTF-8 decoder
that never fails on bad bytes) and how it ends (the process group is signalled on every exit path,
normal or not, so grandchildren do not outlive the run).

Why ``loop.subprocess_exec`` with a protocol of our own rather than ``create_subprocess_exec``:
both exec the argv directly, but on Python 3.11 ``Process.wait()`` returns only once *every* pipe
is closed, so a grandchild that keeps stdout or stderr open would hang a run whose own program had
already exited. The protocol's ``process_exited`` tells us the moment the program ends; we then
give the pipes a short grace (``LINGER``) and stop the group.

It also owns the set of process groups that are alive right now (``_LIVE_GROUPS``), so the server
can SIGKILL whatever is left with ``kill_live_groups`` as its very last act: a run whose cleanup
did not finish within the exit bound must not leave a process group behind once the server is
gone (nobody would ever stop it). Descendants that left the group (``setsid``) are found through
``agentls.backends.descendants`` and killed with it.

Where the child runs: the request's ``cwd`` (the workspace folder, which the service passes only
for a trusted workspace and a backend with ``cwd = "workspace"``), or else a neutral, empty,
per-run temporary folder that is removed afterwards, with ``PYTHONSAFEPATH=1``: a tool that loads
code or configuration from its working directory (``python -m pkg``, ``claude``'s
``.claude/settings.json`` hooks) then finds nothing of the repository's; the workspace reaches the
child only through the prompt.

Resource limits (``max_memory_mb``, ``max_cpu_seconds``, ``max_open_files``, ``max_processes``)
are applied with ``setrlimit`` in the child before the program is executed, by a tiny exec
wrapper (``sys.executable -I -S -c LIMITS_WRAPPER``) rather than ``preexec_fn``: the server has
threads, and running Python between ``fork`` and ``exec`` in a threaded process can deadlock;
``preexec_fn`` also forces a full ``fork`` instead of ``vfork``, which copies the page tables of a
server holding a warm cache. Measured on the shared 2-vCPU VM, spawning ``/bin/true`` from a
process with 300 MB resident (median of 30): 1.4 ms plain, 37 ms through the wrapper, 64 ms with a
``preexec_fn``. The wrapper is used only when a limit is set. A program that fails after hitting a
limit fails the run with a message naming that limit.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import cast

from agentls.backends import descendants
from agentls.backends.base import BackendError, BackendEvent, BackendRequest, TextDelta
from agentls.config import BackendConfig
from agentls.redaction import scrub

logger = logging.getLogger(__name__)

SAFE_ENV_NAMES: frozenset[str] = frozenset(
    {
        # POSIX basics every CLI expects.
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
        # Windows: without these, programs cannot even find their own DLLs or profile.
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "WINDIR",
        "COMSPEC",
        "PATHEXT",
        "TEMP",
        "TMP",
        "USERNAME",
        "USERPROFILE",
        "HOMEDRIVE",
        "HOMEPATH",
        "APPDATA",
        "LOCALAPPDATA",
        "PROGRAMDATA",
    }
)
"""Variables passed to every command child: locale, paths and identity, never credentials."""

SAFE_ENV_PREFIXES: tuple[str, ...] = ("LC_",)
"""Variable name prefixes passed to every command child (the locale categories)."""

READ_HIGH_WATER = 256 * 1024
"""Bytes of unread stdout after which we stop reading the pipe, so a child that floods output
faster than the run consumes it blocks on its own write instead of growing our memory."""

STDERR_TAIL_BYTES = 4096
"""Bytes of stderr kept (the most recent ones): enough for an error message, bounded for a child
that writes megabytes of logs."""

ERROR_TAIL_CHARS = 2048
"""How much of the stderr tail goes into a failure message."""

LINGER = 1.0
"""Seconds we keep reading stdout after the program exited, while a grandchild still holds it."""

STDERR_GRACE = 0.5
"""Seconds a failed run waits for the rest of stderr (a grandchild may hold it open)."""

KILL_GRACE = 0.5
"""Seconds between SIGTERM and SIGKILL when stopping a process group."""

REAP_TIMEOUT = 1.0
"""Seconds to wait for the program's exit status after SIGKILL before giving up on it."""

NEUTRAL_DIR_PREFIX = "agentls-run-"
"""Prefix of the per-run empty working directory of a child that may not run in the workspace."""

RLIMITS: tuple[tuple[str, str, int], ...] = (
    ("max_memory_mb", "RLIMIT_AS", 1024 * 1024),
    ("max_cpu_seconds", "RLIMIT_CPU", 1),
    ("max_open_files", "RLIMIT_NOFILE", 1),
    ("max_processes", "RLIMIT_NPROC", 1),
)
"""Backend setting, ``resource`` limit, and the factor from the setting's unit to the limit's."""

LIMITS_WRAPPER = """
import os, resource, sys
a = sys.argv
i = a.index("--")
for spec in a[1:i]:
    name, _, value = spec.partition("=")
    limit = getattr(resource, name)
    n = int(value)
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY and n > hard:
        n = hard
    top = n + 1 if name == "RLIMIT_CPU" and (hard == resource.RLIM_INFINITY or n < hard) else n
    resource.setrlimit(limit, (n, top))
try:
    os.execv(a[i + 1], a[i + 2:])
except OSError as e:
    sys.stderr.write(f"agentls: cannot run {a[i + 2]}: {e.strerror}\\n")
    os._exit(127)
"""
"""Runs as ``python -I -S -c LIMITS_WRAPPER RLIMIT_X=n ... -- PATH ARGV0 ARGS...``: sets each limit
(soft and hard; CPU gets one more second of hard limit so SIGXCPU comes first) then replaces itself
with the program, keeping the pid, group and pipes the server set up."""

_LIMIT_SIGNS: dict[str, tuple[str, ...]] = {
    "max_memory_mb": ("MemoryError", "Cannot allocate memory", "out of memory", "bad_alloc"),
    "max_open_files": ("Too many open files", "EMFILE"),
    "max_processes": ("Resource temporarily unavailable", "can't start new thread", "EAGAIN"),
}
"""What a program's stderr says when a limit stopped it (the C library's and Python's words)."""

_LIVE_GROUPS: set[int] = set()
"""Process group ids of runs whose cleanup has not finished (changed on the event loop)."""


def kill_live_groups() -> int:
    """SIGKILL every process group a run started and has not stopped yet; how many were alive.

    The last-resort sweep at server exit; safe to call from any thread at that point, since the
    loop no longer runs.
    """
    killed = 0
    for pgid in list(_LIVE_GROUPS):
        if _signal_group(pgid, signal.SIGKILL):
            killed += 1
    _LIVE_GROUPS.clear()
    return killed


def child_env(
    config: BackendConfig,
    run_id: str,
    model: str | None,
    base: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The environment of a command child: an allow-list, never the server's whole environment.

    The server's own environment may hold API keys for the HTTP backends; a command agent should
    see one only if the user named it in ``env``, so a third-party CLI cannot pick up keys meant
    for something else (hardening S7).

    Args:
        config: The backend; its ``env`` names extra variables to pass (those that exist).
        run_id: Exposed as ``AGENTLS_RUN_ID`` so a program can tag its own logs.
        model: Exposed as ``AGENTLS_MODEL`` when known, so one script can serve several models.
        base: The environment to pick from (the server's by default).

    Returns:
        A new mapping: safe base variables, the configured names, then the ``AGENTLS_*`` ones.
    """
    env = {
        name: value
        for name, value in base.items()
        if name in SAFE_ENV_NAMES or name.startswith(SAFE_ENV_PREFIXES)
    }
    for name in config.env:
        if name and "=" not in name and name in base:
            env[name] = base[name]
    env["AGENTLS_RUN_ID"] = run_id
    if model:
        env["AGENTLS_MODEL"] = model
    return env


def child_limits(config: BackendConfig) -> list[tuple[str, str, int]]:
    """The limits to apply to this backend's children: (setting, ``resource`` name, value).

    Empty on systems without ``setrlimit`` (Windows), where the settings have no effect.
    """
    out: list[tuple[str, str, int]] = []
    if os.name != "posix":
        return out
    for setting, name, factor in RLIMITS:
        value = getattr(config, setting)
        if value:
            out.append((setting, name, int(value) * factor))
    return out


def limited_argv(
    argv: tuple[str, ...], program: str, limits: list[tuple[str, str, int]]
) -> list[str]:
    """The command line that applies ``limits`` and then executes ``program`` with ``argv``."""
    specs = [f"{name}={value}" for _, name, value in limits]
    return [sys.executable, "-I", "-S", "-c", LIMITS_WRAPPER, *specs, "--", program, *argv]


def limit_hit(code: int, stderr: str, config: BackendConfig) -> str | None:
    """Which configured limit most likely ended a failed program, as words for the message."""
    if code == -getattr(signal, "SIGXCPU", 0) and config.max_cpu_seconds:
        return f"max_cpu_seconds ({config.max_cpu_seconds} s of CPU time)"
    units = {"max_memory_mb": "MiB", "max_open_files": "files", "max_processes": "processes"}
    for setting, signs in _LIMIT_SIGNS.items():
        value = getattr(config, setting)
        if value and any(sign in stderr for sign in signs):
            return f"{setting} ({value} {units[setting]})"
    if config.max_memory_mb and code in (
        -signal.SIGSEGV,
        -signal.SIGABRT,
        -getattr(signal, "SIGKILL", 9),
    ):
        return f"max_memory_mb ({config.max_memory_mb} MiB)"
    return None


def _resolve_program(program: str, cwd: str, env: Mapping[str, str]) -> str | None:
    """The file the wrapper will execute: ``PATH`` lookup as ``exec`` would, relative to ``cwd``."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(program, path=env.get("PATH", os.defpath))


class _ChildPipes(asyncio.SubprocessProtocol):
    """What the event loop tells us about one child: its stdout, its stderr tail, its exit.

    State is changed only by the loop's callbacks and read by the generator on the same loop;
    ``changed`` wakes the generator after any change.
    """

    def __init__(self) -> None:
        """Start empty; ``connection_made`` delivers the transport."""
        self.transport: asyncio.SubprocessTransport | None = None
        self.changed = asyncio.Event()
        """Set whenever there is new output, stdout closed, or the program exited."""
        self.exited = asyncio.Event()
        """Set once the program's exit status is known (it has been reaped)."""
        self.stdout_closed = False
        self.stderr_closed = asyncio.Event()
        """Set when stderr reached its end: the tail is complete."""
        self._stdout: deque[bytes] = deque()
        self._stdout_bytes = 0
        self._paused = False
        self._stderr = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport: it is how we pause reading and learn the pid."""
        self.transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        """Queue stdout; keep only the tail of stderr."""
        if fd == 1:
            self._stdout.append(bytes(data))
            self._stdout_bytes += len(data)
            if self._stdout_bytes >= READ_HIGH_WATER and not self._paused:
                reader = self._pipe(1)
                if reader is not None:
                    reader.pause_reading()
                    self._paused = True
            self.changed.set()
        elif fd == 2:
            self._stderr += data
            if len(self._stderr) > STDERR_TAIL_BYTES:
                del self._stderr[: len(self._stderr) - STDERR_TAIL_BYTES]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        """Note the end of stdout (stdin closing early just means the child stopped reading)."""
        if fd == 1:
            self.stdout_closed = True
            self.changed.set()
        elif fd == 2:
            self.stderr_closed.set()

    def process_exited(self) -> None:
        """The program ended (its status is on the transport); grandchildren may live on."""
        self.exited.set()
        self.changed.set()

    def take(self) -> bytes:
        """Everything stdout delivered since the last call; resumes a paused pipe."""
        data = b"".join(self._stdout)
        self._stdout.clear()
        self._stdout_bytes = 0
        if self._paused:
            reader = self._pipe(1)
            if reader is not None and not reader.is_closing():
                reader.resume_reading()
            self._paused = False
        return data

    def stderr_tail(self) -> str:
        """The last stderr bytes as text (bad UTF-8 replaced), stripped."""
        return self._stderr.decode("utf-8", errors="replace").strip()

    def _pipe(self, fd: int) -> asyncio.ReadTransport | None:
        if self.transport is None:
            return None
        return cast(asyncio.ReadTransport | None, self.transport.get_pipe_transport(fd))


def _signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False when the group is gone."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(pid, sig)
        else:  # pragma: no cover - Windows has no process groups of this kind
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The pid was reused by a process we may not signal: our group is gone.
        return False
    return True


def _kill_spawned(spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, _ChildPipes]]) -> None:
    """Stop the group of a program whose run was cancelled while it was being started."""
    if spawn.cancelled() or spawn.exception() is not None:
        return
    transport, pipes = spawn.result()
    _signal_group(transport.get_pid(), signal.SIGKILL)
    closing = asyncio.ensure_future(_close_when_reaped(transport, pipes))
    _CLOSING.add(closing)
    closing.add_done_callback(_CLOSING.discard)


def _spawn_finished(
    spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, _ChildPipes]],
) -> None:
    """Tell ``descendants`` the program's pid (asyncio reaps it) once the spawn is over."""
    pid = None
    if not spawn.cancelled() and spawn.exception() is None:
        pid = spawn.result()[0].get_pid()
    descendants.spawn_finished(pid)


_CLOSING: set[asyncio.Future[None]] = set()
"""Strong references to the closing of killed spawns (asyncio keeps only weak ones)."""


async def _close_when_reaped(transport: asyncio.SubprocessTransport, pipes: _ChildPipes) -> None:
    """Close the transport once the killed program is reaped (closing earlier warns and kills)."""
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_TIMEOUT):
                await pipes.exited.wait()
    finally:
        if pipes.exited.is_set():
            descendants.reaped(transport.get_pid())
        transport.close()


class CommandBackend:
    """Runs a configured program per request; implements ``agentls.backends.base.Backend``."""

    def __init__(self, config: BackendConfig) -> None:
        """Check the configuration once; a backend without a program cannot be built."""
        if not config.argv or not config.argv[0]:
            raise BackendError(f"backend {config.name!r}: a command backend needs a program (argv)")
        self.name = config.name
        """The backend's configured name."""
        self._config = config

    def stream(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        """Start the program with the prompt on stdin and yield its stdout as text.

        Raises:
            BackendError: The program could not start, or it exited with a failure (the message
                names it, its exit code or signal, and the end of its stderr).
        """
        return self._run(request)

    async def aclose(self) -> None:
        """Nothing is shared between runs: each run's generator cleans up its own process."""

    async def _run(self, request: BackendRequest) -> AsyncIterator[BackendEvent]:
        neutral = request.cwd is None
        cwd = request.cwd or tempfile.mkdtemp(prefix=NEUTRAL_DIR_PREFIX)
        try:
            # aclosing: the inner generator's cleanup (stopping the process group) must run
            # now when the run ends early, not whenever the loop finalizes it.
            async with contextlib.aclosing(self._run_in(request, cwd, neutral=neutral)) as events:
                async for event in events:
                    yield event
        finally:
            if neutral:
                # Off the loop: the child may have left any number of files behind.
                await asyncio.to_thread(shutil.rmtree, cwd, ignore_errors=True)

    async def _run_in(
        self, request: BackendRequest, cwd: str, *, neutral: bool
    ) -> AsyncGenerator[BackendEvent, None]:
        config = self._config
        program = config.argv[0]
        env = child_env(config, request.run_id, request.model or config.model)
        if neutral:
            env["PYTHONSAFEPATH"] = "1"  # python -m / -c must not import from the folder
        secrets = [env[name] for name in config.env if name in env]
        argv: list[str] = list(config.argv)
        limits = child_limits(config)
        if limits:
            resolved = _resolve_program(program, cwd, env)
            if resolved is None:
                raise BackendError(f"command not found: {program}")
            argv = limited_argv(config.argv, resolved, limits)
        loop = asyncio.get_running_loop()
        # The program is running before ``subprocess_exec`` returns (it still connects the
        # pipes). Cancelled at that moment, asyncio would SIGKILL the program alone and orphan
        # anything it already started; so the spawn is shielded, and a cancelled run stops the
        # whole group as soon as the spawn completes.
        spawn = asyncio.ensure_future(
            loop.subprocess_exec(
                _ChildPipes,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        )
        descendants.spawn_starting()
        spawn.add_done_callback(_spawn_finished)
        try:
            transport, pipes = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            spawn.add_done_callback(_kill_spawned)
            raise
        except FileNotFoundError as e:
            if e.filename == cwd:
                raise BackendError(f"working directory not found: {cwd}") from None
            raise BackendError(f"command not found: {program}") from None
        except PermissionError as e:
            if e.filename == cwd:
                raise BackendError(f"working directory not accessible: {cwd}") from None
            raise BackendError(f"command not found: {program} (not executable)") from None
        except OSError as e:
            raise BackendError(f"could not start {program}: {e.strerror or e}") from None

        pid = transport.get_pid()
        _LIVE_GROUPS.add(pid)
        logger.debug("run %s: started %s (pid %d)", request.run_id, program, pid)
        try:
            stdin = cast(asyncio.WriteTransport | None, transport.get_pipe_transport(0))
            if stdin is not None:
                # Buffered by the transport and written as the child reads, concurrently with our
                # reading of stdout: no pipe deadlock, whatever the prompt's size. A child that
                # never reads just leaves it unsent (EPIPE is handled by the transport).
                stdin.write(request.prompt.encode("utf-8", errors="replace"))
                stdin.close()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            linger_until: float | None = None
            while True:
                if pipes.exited.is_set() and not pipes.stdout_closed:
                    # The program is gone but something (a grandchild) still holds stdout:
                    # read on for a moment, then stop, even if it keeps writing.
                    linger_until = linger_until or loop.time() + LINGER
                    if loop.time() >= linger_until:
                        text = decoder.decode(pipes.take())
                        if text:
                            yield TextDelta(text)
                        break
                data = pipes.take()
                if data:
                    text = decoder.decode(data)
                    if text:
                        yield TextDelta(text)
                    continue
                if pipes.stdout_closed:
                    break
                pipes.changed.clear()
                timeout = None if linger_until is None else max(0.0, linger_until - loop.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await pipes.changed.wait()
            tail = decoder.decode(b"", final=True)
            if tail:
                yield TextDelta(tail)
            await pipes.exited.wait()
            code = transport.get_returncode()
            if code:
                # The exit can be reported before the last stderr bytes are delivered.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STDERR_GRACE):
                        await pipes.stderr_closed.wait()
                stderr = pipes.stderr_tail()
                hit = limit_hit(code, stderr, config)
                raise BackendError(self._failure(program, code, stderr, secrets, hit))
        finally:
            await self._stop(transport, pipes, request.run_id)

    @staticmethod
    def _failure(
        program: str, code: int, stderr: str, secrets: list[str], limit: str | None = None
    ) -> str:
        """The user-facing message for a failed program: what, why, and its last words."""
        if code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        message = f"{program} {how}"
        if limit is not None:
            message += f" after hitting the limit {limit}"
        if stderr:
            tail = stderr[-ERROR_TAIL_CHARS:]
            message += f": {tail}" if len(stderr) <= ERROR_TAIL_CHARS else f": ...{tail}"
        return scrub(message, secrets)

    async def _stop(
        self, transport: asyncio.SubprocessTransport, pipes: _ChildPipes, run_id: str
    ) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``KILL_GRACE``; reap.

        Runs on every way out of the generator (end of output, failure, cancellation, timeout,
        the consumer closing it early). If this cleanup is itself cancelled, the group is
        SIGKILLed at once so nothing survives a second cancellation.
        """
        pid = transport.get_pid()
        loop = asyncio.get_running_loop()
        # Before any signal: the program's tree by parent links, which reaches descendants
        # that left its process group (setsid); orphans already re-parented to the server
        # (its subreaper) are found by the run id in their environment.
        tree = descendants.family(pid)
        try:
            if _signal_group(pid, signal.SIGTERM):
                deadline = loop.time() + KILL_GRACE
                if not pipes.exited.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(KILL_GRACE):
                            await pipes.exited.wait()
                # The program is gone; give the rest of the group what is left of the grace.
                delay = 0.002
                while loop.time() < deadline and _signal_group(pid, 0):
                    await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                    delay = min(delay * 2, 0.05)
                if _signal_group(pid, signal.SIGKILL):
                    logger.debug("run %s: process group %d needed SIGKILL", run_id, pid)
            if not pipes.exited.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REAP_TIMEOUT):
                        await pipes.exited.wait()
                if not pipes.exited.is_set():
                    logger.warning("run %s: process %d did not exit after SIGKILL", run_id, pid)
        except BaseException:
            _signal_group(pid, signal.SIGKILL)
            raise
        finally:
            strays = descendants.kill_all(tree + descendants.adopted(run_id))
            if strays:
                logger.debug("run %s: killed %d process(es) outside its group", run_id, strays)
            descendants.reap_adopted()
            _LIVE_GROUPS.discard(pid)
            if pipes.exited.is_set():
                descendants.reaped(pid)
            transport.close()
