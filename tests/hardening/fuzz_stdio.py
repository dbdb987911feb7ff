"""P9 (nightly half): mutational fuzz of the whole server over stdio.

Not part of the pytest run. From the repository root:

    .venv/bin/python -m tests.hardening.fuzz_stdio --iterations 300 --seed 1

Each iteration starts `agentls serve`, initializes it, then sends a valid session (status,
agents list, a run, a preview, cancels) whose bytes have been mutated: bit flips, cut or
duplicated ranges, random Content-Length values, junk between frames. The pass criterion is the
one in docs/reliability.md: after the input ends the server either has answered every request it
could read or has exited, within 1 s of the end of input (stdin is closed), with exit code 0 or 1
and no Python traceback on stderr other than logged ones (no crash). Failing inputs are written
to ``--out`` for replay (``--replay FILE``).

``--parser N`` fuzzes the frame parser alone, in process (the atheris-style half: atheris is not
available for this Python), over N mutated streams: anything but a body, a clean end or
``FrameError`` is a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from tests.hardening.conftest import make_workspace
from tests.hardening.rawclient import RawServer, frame, wait_gone


def _session_bytes(workspace: Path) -> bytes:
    msgs = [
        ("agentls.status", []),
        ("agentls.agents.list", []),
        ("agentls.run", [{"agent": "echo", "task": "fuzz"}]),
        ("agentls.context.preview", [{"agent": "echo", "task": "t", "files": ["src/app.py"]}]),
        ("agentls.runs.cancel", [{"id": "nope"}]),
        ("agentls.history.list", [{}]),
    ]
    out = b""
    for i, (name, args) in enumerate(msgs):
        out += frame(
            orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "workspace/executeCommand",
                    "params": {"command": name, "arguments": args},
                }
            )
        )
        if i == 2:
            out += frame(
                orjson.dumps({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}})
            )
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        if not buf:
            break
        i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del buf[i : i + rng.randint(1, 40)]
        elif op == 2:
            j = rng.randint(i, min(len(buf), i + 60))
            buf[i:i] = buf[i:j]
        elif op == 3:
            buf[i:i] = rng.choice([b"\r\n", b"\r\n\r\n", b"Content-Length: ", b"junk\n", b"\x00"])
        elif op == 4:
            buf[i:i] = b"Content-Length: %d\r\n\r\n" % rng.choice([0, 1, 7, 99, 10**9, 2**40])
        else:
            buf[i : i + 1] = bytes([rng.randrange(256)])
    return bytes(buf)


async def _parse_all(data: bytes, cut: int) -> None:
    from agentls.lsp.transport import MAX_CONTENT_LENGTH, FrameError, FrameReader

    stream = asyncio.StreamReader(limit=8 * 1024)
    stream.feed_data(data[:cut])
    stream.feed_data(data[cut:])
    stream.feed_eof()
    reader = FrameReader(stream)
    while True:
        try:
            body = await reader.read()
        except FrameError:
            return
        if body is None:
            return
        assert len(body) <= MAX_CONTENT_LENGTH


def fuzz_parser(iterations: int, seed: int) -> dict[str, object]:
    """Mutated session bytes through ``FrameReader``; counts exceptions other than FrameError."""
    rng = random.Random(seed)
    base = _session_bytes(Path("."))
    failures = 0

    async def run() -> None:
        nonlocal failures
        for _ in range(iterations):
            data = mutate(base, rng)
            try:
                await _parse_all(data, rng.randrange(len(data) + 1))
            except Exception:
                failures += 1

    started = time.monotonic()
    asyncio.run(run())
    return {
        "parser_iterations": iterations,
        "failures": failures,
        "seconds": round(time.monotonic() - started, 1),
    }


def one(data: bytes, tmp: Path, workspace: Path) -> str | None:
    """Run one input; a description of the failure, or None."""
    mark = uuid.uuid4().hex
    server = RawServer(tmp, env={"HARDENING_MARK": mark}, debug=False)
    try:
        server.initialize(workspace)
        server.send_raw(data)
        server.close_stdin()
        ended = time.monotonic()
        try:
            code = server.wait_exit(1.0 + 2.0)  # 1 s criterion + the bounded close
        except AssertionError:
            return "still running 3 s after the end of input"
        if code not in (0, 1):
            return f"exit code {code}"
        if time.monotonic() - ended > 3.0:
            return "slow exit"
        err = server.stderr()
        for marker in ("Exception in callback", "never retrieved", "Traceback"):
            if marker in err:
                return f"{marker!r} on stderr: " + err[err.index(marker) - 200 :][:800]
        if server.frames.violations:
            return f"bad output frames: {server.frames.violations[:2]!r}"
        if wait_gone(mark, 2.0):
            return "processes left behind"
        return None
    finally:
        server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--parser", type=int, metavar="N", help="fuzz the frame parser N times")
    args = parser.parse_args()
    if args.parser:
        report = fuzz_parser(args.parser, args.seed)
        print(json.dumps(report))
        return 1 if report["failures"] else 0
    tmp = Path(tempfile.mkdtemp(prefix="agentls-fuzz-"))
    workspace = make_workspace(tmp / "ws")
    if args.replay:
        failure = one(args.replay.read_bytes(), tmp / "srv", workspace)
        print(json.dumps({"replay": str(args.replay), "failure": failure}))
        return 1 if failure else 0
    rng = random.Random(args.seed)
    base = _session_bytes(workspace)
    failures = 0
    started = time.monotonic()
    for n in range(args.iterations):
        data = mutate(base, rng)
        failure = one(data, tmp / "srv", workspace)
        if failure:
            failures += 1
            args.out.mkdir(exist_ok=True)
            (args.out / f"case-{args.seed}-{n}.bin").write_bytes(data)
            print(json.dumps({"iteration": n, "failure": failure}), flush=True)
    report = {
        "iterations": args.iterations,
        "failures": failures,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
