"""The anthropic backend end to end against a real fake Messages API server on 127.0.0.1.

The transport rules it shares with the openai backend (retry policy, limits, SSE framing) are
tested in depth in test_openai_backend.py; here each fault is checked through Anthropic's own
wire format and its own event meanings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
from tests.fakes.providers import (
    FakeProvider,
    Reply,
    cut_short,
    oversize,
    provider_error,
    raw,
    reset_before,
    reset_during,
    stall,
    status,
    stream,
    trickle,
)

from agentls.backends.anthropic import AnthropicBackend
from agentls.backends.base import BackendError, BackendEvent, BackendRequest, TextDelta, Usage
from agentls.backends.http import HttpOptions
from agentls.config import BackendConfig

KEY_ENV = "AGENTLS_TEST_ANTHROPIC_KEY"
FAST = HttpOptions(backoff_base=0.01, backoff_max=0.05, max_response_bytes=65_536)
REQUEST = BackendRequest(run_id="r1", system="You summarise.", user="Summarise this.")
HELLO = ["Hello", ", ", "world", "!"]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"canary-{uuid.uuid4().hex}"  # no well-known shape: only exact scrubbing catches it
    monkeypatch.setenv(KEY_ENV, value)
    return value


@pytest.fixture
def fake(key: str) -> Iterator[FakeProvider]:
    with FakeProvider("anthropic", api_key=key) as provider:
        yield provider


def config_for(fake: FakeProvider, **changes: Any) -> BackendConfig:
    base = BackendConfig(
        name="claude",
        kind="anthropic",
        base_url=fake.base_url,
        model="claude-test",
        api_key_env=KEY_ENV,
        connect_timeout=2.0,
        read_timeout=5.0,
        max_retries=2,
        retry_after_cap=2.0,
    )
    return replace(base, **changes)


@pytest.fixture
async def backend(fake: FakeProvider) -> AsyncIterator[AnthropicBackend]:
    b = AnthropicBackend(config_for(fake), options=FAST)
    yield b
    await b.aclose()


async def run(backend: AnthropicBackend, request: BackendRequest = REQUEST) -> list[BackendEvent]:
    async with contextlib.aclosing(backend.stream(request)) as events:
        return [event async for event in events]


def texts(events: list[BackendEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def failure(backend: AnthropicBackend, limit: float = 3.0) -> str:
    with pytest.raises(BackendError) as caught:
        await asyncio.wait_for(run(backend), limit)
    return caught.value.message


# -- a normal answer ----------------------------------------------------------------------------


async def test_streams_text_in_order_with_usage_from_start_and_delta(
    fake: FakeProvider, key: str
) -> None:
    config = config_for(fake, temperature=0.5, headers={"anthropic-beta": "test-beta"})
    backend = AnthropicBackend(config, options=FAST)
    fake.script(stream("Bonjour", " le ", "monde", " ✓", usage=(1500, 42)))
    try:
        events = await run(backend)
    finally:
        await backend.aclose()

    assert events == [
        Usage(prompt_tokens=1500),  # message_start: held back until the first text
        TextDelta("Bonjour"),
        TextDelta(" le "),
        TextDelta("monde"),
        TextDelta(" ✓"),
        Usage(prompt_tokens=1500, completion_tokens=42),  # message_delta: both figures
    ]
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "test-beta"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Summarise this."}],
        "stream": True,
        "system": "You summarise.",
        "temperature": 0.5,
    }


async def test_configured_max_tokens_version_and_agent_model(fake: FakeProvider) -> None:
    config = config_for(fake, max_tokens=300, anthropic_version="2099-01-01")
    backend = AnthropicBackend(config, options=FAST)
    request = BackendRequest(run_id="r2", system="", user="Hi", model="claude-agent-choice")
    try:
        assert texts(await run(backend, request)) == HELLO
    finally:
        await backend.aclose()
    sent = fake.requests[0]
    assert sent.headers["anthropic-version"] == "2099-01-01"
    assert sent.json["max_tokens"] == 300
    assert sent.json["model"] == "claude-agent-choice"
    assert "system" not in sent.json


async def test_only_text_deltas_are_answer_text(
    fake: FakeProvider, backend: AnthropicBackend
) -> None:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Answer"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": "{"},
            },
        ),
        ("future_event", {"type": "future_event", "whatever": True}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    fake.script(raw(body.encode()))
    assert await run(backend) == [
        Usage(prompt_tokens=100),  # cached input counts: the model read all of it
        TextDelta("Answer"),
        Usage(prompt_tokens=100, completion_tokens=5),
    ]


async def test_slow_trickle_arrives_intact(fake: FakeProvider, backend: AnthropicBackend) -> None:
    chunks = ("Ça ", "va", " — ", "日本語", "\n\n", "🎉")
    fake.script(trickle(*chunks, piece=4, delay=0.001))
    events = await asyncio.wait_for(run(backend), 10)
    assert texts(events) == list(chunks)
    assert events[-1] == Usage(12, 4)


# -- faults -------------------------------------------------------------------------------------


FAULTS = [
    pytest.param(
        [provider_error(1, "Overloaded")],
        "the provider reported an error: overloaded_error: Overloaded",
        1,
        id="error-event",
    ),
    pytest.param(
        [
            status(
                400,
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "max_tokens: too large"},
                },
            )
        ],
        "HTTP 400 from 127.0.0.1:{port}: invalid_request_error: max_tokens: too large",
        1,
        id="400-not-retried",
    ),
    pytest.param(
        [
            status(
                529,
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        ]
        * 3,
        "HTTP 529 from 127.0.0.1:{port}: overloaded_error: Overloaded",
        3,
        id="529-retries-exhausted",
    ),
    pytest.param(
        [status(429, retry_after="120")],
        "the server asks to retry after 120 s, more than retry_after_cap = 2 s",
        1,
        id="429-over-cap",
    ),
    pytest.param([reset_during(2)], "connection failed", 1, id="reset-mid-stream"),
    pytest.param(
        [cut_short(2)],
        "ended the stream before the answer was complete",
        1,
        id="no-message-stop",
    ),
    pytest.param([stall(1)], "stream stalled: no data for 1 s", 1, id="stall"),
    pytest.param(
        [raw(b'event: content_block_delta\ndata: {"type": "content_block_delta"\n\n')],
        "malformed stream: an event is not valid JSON",
        1,
        id="bad-json",
    ),
    pytest.param(
        [raw(b'event: content_block_delta\ndata: {"type": "content_block_delta"}\n\n')],
        "malformed stream: content_block_delta without a delta",
        1,
        id="bad-shape",
    ),
    pytest.param([oversize(5_000_000)], "response exceeded 65536 bytes", 1, id="over-cap"),
]


@pytest.mark.parametrize(("replies", "expected", "attempts"), FAULTS)
async def test_fault_ends_in_clear_error(
    fake: FakeProvider, replies: list[Reply], expected: str, attempts: int
) -> None:
    backend = AnthropicBackend(config_for(fake, read_timeout=1.0), options=FAST)
    fake.script(*replies)
    start = time.monotonic()
    try:
        message = await failure(backend)
    finally:
        await backend.aclose()
    assert expected.replace("{port}", str(fake.port)) in message
    assert time.monotonic() - start < 10  # a hang bound: the stalls last 30 s
    assert len(fake.requests) == attempts


async def test_wrong_key_is_a_401_naming_the_variable(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, backend: AnthropicBackend
) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-key-000000")
    message = await failure(backend)
    assert message.startswith(f"HTTP 401 from 127.0.0.1:{fake.port}: authentication_error")
    assert KEY_ENV in message


async def test_unset_key_variable_is_named_and_nothing_is_sent(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, backend: AnthropicBackend
) -> None:
    monkeypatch.delenv(KEY_ENV)
    message = await failure(backend)
    assert f"the environment variable {KEY_ENV} is not set" in message
    assert fake.requests == []


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(status(529), id="529"),
        pytest.param(status(429, retry_after="0"), id="429"),
        pytest.param(reset_before(), id="reset-before-answer"),
        # After message_start, before any text; its usage must not survive into the retry.
        pytest.param(Reply(then="reset", after=0, usage=(999, 999)), id="reset-after-start"),
    ],
)
async def test_fault_before_first_text_is_retried_without_stale_usage(
    fake: FakeProvider, backend: AnthropicBackend, first: Reply
) -> None:
    fake.script(first, stream(usage=(20, 4)))
    events = await asyncio.wait_for(run(backend), 5)
    assert events == [
        Usage(prompt_tokens=20),
        *(TextDelta(t) for t in HELLO),
        Usage(prompt_tokens=20, completion_tokens=4),
    ]
    assert len(fake.requests) == 2


async def test_cancel_mid_stream_closes_the_connection(
    fake: FakeProvider, backend: AnthropicBackend
) -> None:
    fake.script(stall(1))
    first_text = asyncio.Event()

    async def consume() -> None:
        async for event in backend.stream(REQUEST):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_text.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.wait_disconnect, 10.0)  # the stall lasts 30 s


async def test_cancel_before_the_first_text_closes_the_connection(
    fake: FakeProvider, backend: AnthropicBackend
) -> None:
    fake.script(stall(0))  # headers and message_start sent, then silence
    task = asyncio.create_task(run(backend))
    while not fake.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.wait_disconnect, 10.0)


async def test_canary_key_appears_in_no_error_and_no_log(
    fake: FakeProvider, key: str, backend: AnthropicBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"invalid x-api-key {key} (sent as x-api-key: {key})"
    anthropic_error = {"type": "error", "error": {"type": "authentication_error", "message": echo}}
    fake.script(
        status(401, anthropic_error),
        status(529, {"type": "error", "error": {"type": "overloaded_error", "message": echo}}),
        status(500, echo),
        status(503, echo),
        provider_error(1, echo),
    )
    messages = [await failure(backend) for _ in range(3)]  # 401; 529, 500, 503; error event
    assert texts(await run(backend)) == HELLO

    assert fake.requests[0].headers["x-api-key"] == key  # it was really sent
    secret_part = key.removeprefix("canary-")
    for message in messages:
        assert key not in message and secret_part not in message
        assert "[redacted]" in message
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "retrying" in logged
    assert key not in logged and secret_part not in logged
