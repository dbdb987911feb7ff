"""Catalogue P2, P9, G1 and N4: the byte stream itself.

A framing error makes the server log it and exit 1 within 1 s (never a silent zombie, never an
allocation the size of a claimed length); the frame parser never raises anything but
``FrameError`` on any bytes (Hypothesis); nothing but frames ever reaches the client, even when an
agent writes to the server's own fd 1; 2 000 pipelined requests are all answered quickly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentls.lsp.transport import MAX_CONTENT_LENGTH, FrameError, FrameReader
from tests.hardening.conftest import CANARY
from tests.hardening.rawclient import RawServer, frame

Start = Callable[..., RawServer]

FRAMING_ERRORS = {
    "short-length": b"Content-Length: 5\r\n\r\n" + b'{"jsonrpc":"2.0"}' + b"\r\n\r\n",
    "zero-length": b"Content-Length: 0\r\n\r\n",
    "negative": b"Content-Length: -5\r\n\r\n",
    "not-a-number": b"Content-Length: abc\r\n\r\n",
    "huge": b"Content-Length: 100000000000000000000\r\n\r\n",
    "over-cap": b"Content-Length: %d\r\n\r\n" % (MAX_CONTENT_LENGTH + 1),
    "2**45": b"Content-Length: 35184372088832\r\n\r\n",
    "lf-only": b"Content-Length: 2\n\n{}",
    "no-length": b"Content-Type: application/json\r\n\r\n{}",
    "junk-line": b"hello there\r\n\r\n",
    "long-header": b"X-Pad: " + b"a" * 9000 + b"\r\n",
    "eof-mid-body": b"Content-Length: 100\r\n\r\n{}",
    "eof-mid-header": b"Content-Len",
}


@pytest.mark.parametrize("name", sorted(FRAMING_ERRORS))
def test_p2_framing_error_exits_1_within_a_second(
    start_server: Start, workspace: Path, name: str
) -> None:
    server = start_server(debug=False)
    server.initialize(workspace, wait_ready=False)
    rss = server.rss()
    started = time.monotonic()
    server.send_raw(FRAMING_ERRORS[name])
    if name.startswith("eof") or name == "zero-length":
        server.close_stdin()
    if name == "zero-length":
        # An empty body is not JSON: answered -32700, then end of input (exit 0).
        assert server.wait_exit(10.0) == 0
        return
    assert server.wait_exit(1.5) == 1
    assert time.monotonic() - started < 10  # a hang bound
    assert "framing error" in server.stderr()
    assert server.frames.violations == []
    del rss


def test_p2_a_claimed_length_allocates_nothing(start_server: Start, workspace: Path) -> None:
    server = start_server(debug=False)
    server.initialize(workspace, wait_ready=False)
    before = server.rss()
    server.send_raw(b"Content-Length: %d\r\n\r\n" % MAX_CONTENT_LENGTH)
    server.send_raw(b"{" * 1000)  # then stall: the server waits, holding only what arrived
    time.sleep(0.5)
    assert server.rss() - before < 10 * 1024 * 1024
    assert server.proc.poll() is None
    server.close_stdin()
    assert server.wait_exit(10.0) == 1  # end of input inside a body


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                [
                    b"Content-Length: ",
                    b"content-length:",
                    b"\r\n",
                    b"\r\n\r\n",
                    b"\n",
                    b"\r",
                    b"Content-Type: x\r\n",
                    b"99999999999999",
                    b"-1",
                    b"2",
                    b"{}",
                    b":",
                ]
            ),
            st.integers(0, 40).map(lambda n: frame(b"x" * n)),
        ),
        max_size=30,
    )
)
def test_p9_frame_parser_never_raises_anything_else(chunks: list[bytes]) -> None:
    """Any byte sequence: bodies, a clean end, or FrameError; never another exception."""

    async def parse() -> list[bytes]:
        stream = asyncio.StreamReader(limit=8 * 1024)
        for chunk in chunks:
            stream.feed_data(chunk)
        stream.feed_eof()
        reader = FrameReader(stream)
        bodies: list[bytes] = []
        while True:
            try:
                body = await reader.read()
            except FrameError:
                return bodies
            if body is None:
                return bodies
            assert len(body) <= MAX_CONTENT_LENGTH
            bodies.append(body)

    bodies = asyncio.run(parse())
    data = b"".join(chunks)
    for body in bodies:
        assert body in data


@given(st.lists(st.binary(min_size=0, max_size=200), max_size=20))
@settings(max_examples=200, deadline=None)
def test_p9_well_formed_frames_always_round_trip(bodies: list[bytes]) -> None:
    async def parse() -> list[bytes]:
        stream = asyncio.StreamReader(limit=8 * 1024)
        for body in bodies:
            stream.feed_data(frame(body))
        stream.feed_eof()
        reader = FrameReader(stream)
        out = []
        while (body := await reader.read()) is not None:
            out.append(body)
        return out

    assert asyncio.run(parse()) == bodies


def test_g1_an_agent_writing_to_the_servers_stdout(start_server: Start, workspace: Path) -> None:
    server = start_server()
    server.initialize(workspace)
    record = server.call("agentls.run", {"agent": "attack", "task": "t"})
    assert record["status"] == "succeeded" and record["output"].endswith("ok\n")
    # The write to the server's fd 1 happened, and landed on stderr instead of the stream.
    assert "JUNK!" in server.stderr()
    assert "runs" in server.call("agentls.status")
    assert server.frames.violations == []
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_n4_two_thousand_pipelined_requests(start_server: Start, workspace: Path) -> None:
    server = start_server(debug=False)
    server.initialize(workspace)
    body = b"".join(
        frame(
            orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": f"n4-{i}",
                    "method": "workspace/executeCommand",
                    "params": {"command": "agentls.status", "arguments": []},
                }
            )
        )
        for i in range(2000)
    )
    server.sent_ids.extend(f"n4-{i}" for i in range(2000))
    started = time.monotonic()
    server.send_raw(body)
    server.wait_for(lambda m: m.get("id") == "n4-1999", 60)  # a hang bound: ~1 s expected
    elapsed = time.monotonic() - started
    print(f"N4: 2000 pipelined requests in {elapsed:.2f} s ({2000 / elapsed:.0f} req/s)")
    # every one answered exactly once (checked by problems()); how fast is agentls bench's
    assert server.problems(canaries=(CANARY,)) == []
    assert server.shutdown_and_exit() == 0


def test_a_client_that_stops_reading_is_given_up(tmp_path: Path, workspace: Path) -> None:
    """Output the client never reads is buffered up to a cap, then the server exits 1."""
    import os
    import subprocess
    import sys

    import psutil

    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "AGENTLS_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentls", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # never read
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None
    try:
        params = {
            "processId": None,
            "rootUri": workspace.as_uri(),
            "capabilities": {},
            "initializationOptions": {"trusted": True},
        }
        msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}]
        msgs.append({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        for i in range(40):
            msgs.append(
                {
                    "jsonrpc": "2.0",
                    "id": f"f{i}",
                    "method": "workspace/executeCommand",
                    "params": {"command": "agentls.run", "arguments": [{"agent": "flood"}]},
                }
            )
        proc.stdin.write(b"".join(frame(orjson.dumps(m)) for m in msgs))
        proc.stdin.flush()
        peak = 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.1)
        assert proc.wait(5) == 1
        assert peak < 512 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MB"
    finally:
        proc.kill()
        proc.wait()
