"""OpenAI-compatible and Anthropic backends end to end: the real server, a fake provider.

The provider runs in a thread of the test process; the server reaches it over loopback like any
endpoint. The key is a canary that must never come back through any channel.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Session, SessionFactory, wait_until
from tests.fakes.providers import FakeProvider, status, stream, trickle

CANARY = "zq-canary-7f3a9b2c41d8e6f0-never-show"
KEY_VAR = "AGENTLS_E2E_PROVIDER_KEY"


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param, api_key=CANARY) as fake:
        yield fake


@pytest.fixture
async def http_session(
    open_session: SessionFactory, workspace: Path, provider: FakeProvider
) -> AsyncIterator[Session]:
    backend: dict[str, Any] = {
        "kind": provider.kind,
        "base_url": provider.base_url,
        "model": provider.model,
        "api_key_env": KEY_VAR,
        "max_retries": 2,
    }
    # DEBUG logging makes the log channel as talkative as it gets: the canary must not be there.
    options = {"default_backend": "fake", "backends": {"fake": backend}, "log_level": "DEBUG"}
    async with open_session(workspace, init_options=options, env={KEY_VAR: CANARY}) as s:
        yield s


def _no_canary_anywhere(session: Session, data_dir: Path, *results: Any) -> None:
    assert CANARY not in repr(results)
    assert CANARY not in repr(session.client.log_messages)
    assert CANARY not in repr(session.client.messages)
    assert CANARY not in repr(session.recorded)
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


async def test_streams_in_order_and_records_usage(
    http_session: Session, provider: FakeProvider, tmp_path: Path
) -> None:
    provider.script(stream("Hel", "lo ", "from ", "the model", usage=(321, 4), delay=0.01))
    result = await http_session.command("agentls.run", {"agent": "reviewer", "task": "hi"})
    assert result["status"] == "succeeded", result
    assert result["output"] == "Hello from the model"
    assert result["usage"] == {"prompt_tokens": 321, "completion_tokens": 4}
    await wait_until(lambda: http_session.recorded.finished)
    chunks = [o for o in http_session.recorded.output if o["id"] == result["id"]]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["text"] for c in chunks) == result["output"]
    sent = provider.requests[-1]
    assert sent.json is not None
    assert "hello from disk" in repr(sent.json)  # the context reached the provider
    stored = await http_session.command("agentls.history.get", {"id": result["id"]})
    assert stored["usage"] == result["usage"]
    _no_canary_anywhere(http_session, tmp_path / "data", result, stored)


async def test_usage_calibrates_the_token_estimate(
    http_session: Session, provider: FakeProvider
) -> None:
    big = http_session.root / "src" / "big.py"
    big.write_text("".join(f"VALUE_{i} = {i}\n" for i in range(200)), encoding="utf-8")
    args = {"agent": "reviewer", "task": "calibrate", "files": [str(big)]}
    before = await http_session.command("agentls.context.preview", args)
    assert before["token_estimate"]["calibrated"] is False
    assert all(m["calibrated"] is False for m in before["manifest"])
    prompt_bytes = len(before["prompt"].encode())
    provider.script(stream("ok", usage=(prompt_bytes // 3, 1)))  # 3 bytes per token, not 4
    result = await http_session.command("agentls.run", args)
    assert result["status"] == "succeeded"
    after = await http_session.command("agentls.context.preview", args)
    estimate = after["token_estimate"]
    assert estimate["calibrated"] is True
    assert estimate["bytes_per_token"] == pytest.approx(3.0, abs=0.05)
    included = [m for m in after["manifest"] if m["status"] == "included"]
    assert included and all(m["calibrated"] for m in after["manifest"])


async def test_cancel_mid_stream_closes_the_connection(
    http_session: Session, provider: FakeProvider
) -> None:
    provider.script(trickle(*[f"word{i} " for i in range(2000)], piece=8, delay=0.02))  # ~40 s
    run = asyncio.ensure_future(
        http_session.command("agentls.run", {"agent": "reviewer", "task": "long"})
    )
    await wait_until(lambda: http_session.recorded.output, timeout=10)
    run_id = http_session.recorded.started[0]["id"]
    assert await http_session.command("agentls.runs.cancel", {"id": run_id}) == {"cancelled": True}
    result = await asyncio.wait_for(run, 5)
    assert result["status"] == "cancelled"
    assert result["output"].startswith("word0")  # partial output kept
    assert await asyncio.to_thread(provider.wait_disconnect, 10.0)
    stored = await http_session.command("agentls.history.get", {"id": run_id})
    assert stored["status"] == "cancelled" and stored["output"] == result["output"]


async def test_provider_errors_fail_the_run_and_the_server_stays_responsive(
    http_session: Session,
    provider: FakeProvider,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    provider.script(*[status(500, {"error": {"message": f"boom {CANARY}"}})] * 3)
    run = asyncio.ensure_future(
        http_session.command("agentls.run", {"agent": "reviewer", "task": "x"})
    )
    status_reply = await http_session.command("agentls.status", {})  # answered meanwhile
    assert "runs" in status_reply
    result = await asyncio.wait_for(run, 20)
    assert result["status"] == "failed"
    assert "500" in result["error"]
    _no_canary_anywhere(http_session, tmp_path / "data", result)
    listed = await http_session.command("agentls.history.list", {"status": "failed"})
    assert result["id"] in [r["id"] for r in listed["runs"]]
    server_stderr = capfd.readouterr().err  # the server's log, forwarded by pytest-lsp
    assert "500" in server_stderr or "agentls" in server_stderr
    assert CANARY not in server_stderr


async def test_history_database_has_no_key(
    http_session: Session, provider: FakeProvider, tmp_path: Path
) -> None:
    provider.script(stream("fine answer"))
    result = await http_session.command("agentls.run", {"agent": "reviewer", "task": "x"})
    assert result["status"] == "succeeded"
    databases = list((tmp_path / "data").rglob("history.sqlite3"))
    assert databases
    with sqlite3.connect(databases[0]) as db:
        rows = [
            bytes(r[0]) if isinstance(r[0], bytes) else str(r[0]).encode()
            for r in db.execute("SELECT json FROM runs")
        ]
    assert any(b"fine answer" in r for r in rows)
    assert not any(CANARY.encode() in r for r in rows)
