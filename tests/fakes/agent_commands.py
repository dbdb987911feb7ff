"""Small real programs used as ``command`` agents in the tests (run with ``sys.executable``).

Each mode behaves like one kind of agent program, good or bad::

    agent_commands.py echo              write the prompt back (stdin -> stdout), exactly
    agent_commands.py chunks N DELAY    write "chunk-<i>\\n" N times, flushing, DELAY s apart
    agent_commands.py fail CODE         write a long stderr (ending in "the model is unavailable")
                                        and exit with CODE
    agent_commands.py signal            kill itself with SIGTERM after writing "bye"
    agent_commands.py env               write the environment as JSON, then cwd on stderr
    agent_commands.py cwd               write the working directory
    agent_commands.py family PIDFILE    start a grandchild, write "<pid> <grandchild pid>" to
                                        PIDFILE, write "ready" and emit a tick every 0.05 s forever
    agent_commands.py hang              write "partial" then sleep forever (ignores stdin)
    agent_commands.py flood             write 64 KiB blocks of "x" forever
    agent_commands.py no-stdin          never read stdin; write "ok" and exit 0
    agent_commands.py split-utf8        write "é€😀" then the invalid byte 0xff, one byte at a
                                        time, flushing each byte
    agent_commands.py orphan-stdout     start a grandchild that keeps stdout open for 30 s,
                                        write "parent done" and exit 0
    agent_commands.py orphan-writer PIDFILE  start a grandchild that writes to stdout forever,
                                        write its pid to PIDFILE, write "parent done", exit 0
    agent_commands.py ignore-term PIDFILE  ignore SIGTERM (only SIGKILL stops it); pid to PIDFILE
    agent_commands.py ignore-term-family PIDFILE  the same, with a grandchild that also ignores
                                        SIGTERM; "<pid> <grandchild pid>" to PIDFILE

    agent_commands.py step LOGDIR DELAY  a recipe step: read "I am <agent>." and the <task> from
                                        the prompt; a task holding FAIL fails (exit 3), HANG
                                        starts a grandchild, writes "<pid> <grandchild pid>" to
                                        LOGDIR/pids-<pid> and ticks forever; otherwise sleep
                                        DELAY s, append {agent, task, start, end} as a JSON line
                                        to LOGDIR/log.jsonl and write "done <agent>: <task>"

``argv(mode, *args)`` builds the command line for a backend configuration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()


def argv(mode: str, *args: str) -> tuple[str, ...]:
    """The argv that runs this script in ``mode`` with the current interpreter."""
    return (sys.executable, str(SCRIPT), mode, *args)


def _forever(tick: str | None = None) -> None:
    i = 0
    while True:
        if tick is not None:
            sys.stdout.write(f"{tick} {i}\n")
            sys.stdout.flush()
        i += 1
        time.sleep(0.05)


def _step(logdir: Path, delay: float) -> int:
    import re

    prompt = sys.stdin.read()
    agent = re.search(r"I am (\S+)\.", prompt)
    task = re.search(r"<task>\n?(.*?)\n?</task>", prompt, re.S)
    name = agent.group(1) if agent else "?"
    text = task.group(1).strip() if task else ""
    if "FAIL" in text:
        sys.stderr.write(f"{name} was told to fail\n")
        return 3
    if "HANG" in text:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"],
            stdout=subprocess.DEVNULL,
        )
        (logdir / f"pids-{os.getpid()}").write_text(f"{os.getpid()} {child.pid}\n")
        _forever("tick")
    start = time.time()
    time.sleep(delay)
    line = json.dumps({"agent": name, "task": text, "start": start, "end": time.time()})
    with open(logdir / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    sys.stdout.write(f"done {name}: {text}\n")
    return 0


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    out = sys.stdout
    if mode == "echo":
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        return 0
    if mode == "chunks":
        count, delay = int(args[0]), float(args[1])
        sys.stdin.read()
        for i in range(count):
            out.write(f"chunk-{i}\n")
            out.flush()
            time.sleep(delay)
        return 0
    if mode == "fail":
        sys.stdin.read()
        out.write("some output first\n")
        sys.stderr.write("noise " * 2000 + "\n")
        sys.stderr.write("the model is unavailable\n")
        return int(args[0])
    if mode == "signal":
        out.write("bye\n")
        out.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0
    if mode == "env":
        sys.stdin.read()
        out.write(json.dumps(dict(os.environ)))
        return 0
    if mode == "cwd":
        out.write(os.getcwd())
        return 0
    if mode == "step":
        return _step(Path(args[0]), float(args[1]))
    if mode == "family":
        child = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"],
            stdout=subprocess.DEVNULL,
        )
        Path(args[0]).write_text(f"{os.getpid()} {child.pid}\n")
        out.write("ready\n")
        out.flush()
        _forever("tick")
    if mode == "hang":
        out.write("partial\n")
        out.flush()
        _forever()
    if mode == "flood":
        block = "x" * 65536
        while True:
            out.write(block)
    if mode == "no-stdin":
        out.write("ok\n")
        return 0
    if mode == "split-utf8":
        for byte in "é€😀".encode() + b"\xff":
            sys.stdout.buffer.write(bytes([byte]))
            sys.stdout.buffer.flush()
            time.sleep(0.01)
        return 0
    if mode == "orphan-stdout":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        out.write("parent done\n")
        return 0
    if mode == "orphan-writer":
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "while True:\n    print('noise', flush=True)\n    time.sleep(0.01)",
            ]
        )
        Path(args[0]).write_text(f"{writer.pid}\n")
        out.write("parent done\n")
        return 0
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(args[0]).write_text(f"{os.getpid()}\n")
        out.write("stubborn\n")
        out.flush()
        _forever()
    if mode == "ignore-term-family":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('ready', flush=True)\n"
                "while True: time.sleep(0.05)",
            ],
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        child.stdout.readline()  # its handler is in place
        Path(args[0]).write_text(f"{os.getpid()} {child.pid}\n")
        out.write("stubborn\n")
        out.flush()
        _forever()
    sys.stderr.write(f"unknown mode {mode}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
