"""The openai backend end to end against a real fake server on 127.0.0.1.

Also home to the tests of the SSE framing and retry rules every HTTP backend shares
(``agentls.backends.http``): they are exercised here through the OpenAI wire format.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.providers import (
    FakeProvider,
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
from agentls.backends.http import HttpOptions, SseEvent, SseParser
from agentls.backends.openai import OpenAIBackend
from agentls.config import BackendConfig, load_settings

KEY_ENV = "AGENTLS_TEST_OPENAI_KEY"
FAST = HttpOptions(backoff_base=0.01, backoff_max=0.05)
REQUEST = BackendRequest(run_id="r1", system="You review code.", user="Review this.")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"canary-{uuid.uuid4().hex}"  # no well-known shape: only exact scrubbing catches it
    monkeypatch.setenv(KEY_ENV, value)
    return value


@pytest.fixture
def fake(key: str) -> Iterator[FakeProvider]:
    with FakeProvider("openai", api_key=key) as provider:
        yield provider


def config_for(fake: FakeProvider, **changes: Any) -> BackendConfig:
    base = BackendConfig(
        name="local",
        kind="openai",
        base_url=fake.base_url,
        model="fake-model",
        api_key_env=KEY_ENV,
        connect_timeout=2.0,
        read_timeout=5.0,
        max_retries=2,
        retry_after_cap=2.0,
    )
    return replace(base, **changes)


@pytest.fixture
async def backend(fake: FakeProvider) -> AsyncIterator[OpenAIBackend]:
    b = OpenAIBackend(config_for(fake), options=FAST)
    yield b
    await b.aclose()


async def run(backend: OpenAIBackend, request: BackendRequest = REQUEST) -> list[BackendEvent]:
    async with contextlib.aclosing(backend.stream(request)) as events:
        return [event async for event in events]


def texts(events: list[BackendEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def failure(backend: OpenAIBackend, limit: float = 3.0) -> tuple[str, float]:
    """The error message a run ends with, and how long it took."""
    start = time.monotonic()
    with pytest.raises(BackendError) as caught:
        await asyncio.wait_for(run(backend), limit)
    return caught.value.message, time.monotonic() - start


# -- a normal answer ----------------------------------------------------------------------------


async def test_streams_chunks_in_order_then_usage(fake: FakeProvider, key: str) -> None:
    config = config_for(fake, temperature=0.2, max_tokens=256, headers={"X-Team": "docs"})
    backend = OpenAIBackend(config, options=FAST)
    fake.script(stream("Hé", "llo ", "世界", " 🙂", usage=(31, 7)))
    try:
        events = await run(backend)
    finally:
        await backend.aclose()

    assert events == [
        TextDelta("Hé"),
        TextDelta("llo "),
        TextDelta("世界"),
        TextDelta(" 🙂"),
        Usage(prompt_tokens=31, completion_tokens=7),
    ]
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["x-team"] == "docs"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "You review code."},
            {"role": "user", "content": "Review this."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 256,
    }


async def test_agent_model_wins_and_empty_system_is_left_out(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    request = BackendRequest(run_id="r2", system="  \n", user="Hi", model="agent-model")
    assert texts(await run(backend, request)) == ["Hello", ", ", "world", "!"]
    body = fake.requests[0].json
    assert body["model"] == "agent-model"
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert "temperature" not in body and "max_tokens" not in body


async def test_without_api_key_env_no_authorization_is_sent() -> None:
    with FakeProvider("openai") as local:  # an Ollama-like server that wants no key
        backend = OpenAIBackend(config_for(local, api_key_env=None), options=FAST)
        try:
            assert texts(await run(backend)) == ["Hello", ", ", "world", "!"]
        finally:
            await backend.aclose()
        assert "authorization" not in local.requests[0].headers


async def test_slow_trickle_splitting_lines_and_characters_arrives_intact(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    chunks = ("Grüße, ", "мир", " — ", "世界", "\u2028", "🙂🙂", "\r\n", "end")
    fake.script(trickle(*chunks, piece=5, delay=0.001))
    events = await asyncio.wait_for(run(backend), 10)
    assert texts(events) == list(chunks)
    assert events[-1] == Usage(12, 4)


async def test_one_pooled_connection_across_runs_until_aclose(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    await run(backend)
    await run(backend)
    await backend.aclose()
    await backend.aclose()  # idempotent
    await run(backend)  # a closed backend opens a fresh pool when used again
    first, second, third = (r.connection for r in fake.requests)
    assert first == second
    assert third != second


async def test_aclose_during_a_run_waits_for_it_then_closes_the_pool(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    """A configuration change retires a backend while it may still be streaming a run."""
    fake.script(stream("a", "b", "c", "d", delay=0.05))
    seen: list[str] = []
    async with contextlib.aclosing(backend.stream(REQUEST)) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                seen.append(event.text)
                if len(seen) == 1:
                    await backend.aclose()
    assert seen == ["a", "b", "c", "d"]
    assert fake.disconnects == 0
    assert await asyncio.to_thread(fake.wait_idle, 10.0)


# -- configuration errors -----------------------------------------------------------------------


async def test_no_model_anywhere_is_a_clear_error(fake: FakeProvider) -> None:
    backend = OpenAIBackend(config_for(fake, model=None), options=FAST)
    message, _ = await failure(backend)
    assert "has no model" in message and "`model`" in message
    assert fake.requests == []


async def test_missing_key_variable_is_named(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTLS_TEST_UNSET_KEY", raising=False)
    backend = OpenAIBackend(config_for(fake, api_key_env="AGENTLS_TEST_UNSET_KEY"), options=FAST)
    message, _ = await failure(backend)
    assert "AGENTLS_TEST_UNSET_KEY is not set" in message
    assert fake.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "not a url", "http://"])
async def test_bad_base_url_is_a_clear_error(url: str) -> None:
    config = BackendConfig(name="odd", kind="openai", base_url=url, model="m")
    backend = OpenAIBackend(config, options=FAST)
    message, _ = await failure(backend)
    assert "base_url must be an http:// or https:// URL" in message


# -- faults that end the run --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FAULTS = [
    pytest.param(
        [status(400, {"error": {"type": "invalid_request_error", "message": "bad model"}})],
        "HTTP 400 from 127.0.0.1:{port}: invalid_request_error: bad model",
        1,
        id="400-not-retried",
    ),
    pytest.param(
        [status(500)] * 3,
        "HTTP 500 from 127.0.0.1:{port}: server_error: scripted 500",
        3,
        id="500-retries-exhausted",
    ),
    pytest.param(
        [status(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")] * 3,
        "HTTP 502 from 127.0.0.1:{port}: 502 Bad Gateway",
        3,
        id="502-html-body",
    ),
    pytest.param(
        [status(429, retry_after="60")],
        "(the server asks to retry after 60 s, more than retry_after_cap = 2 s)",
        1,
        id="429-retry-after-over-cap",
    ),
    pytest.param(
        [reset_during(1)],
        "connection failed: connection to 127.0.0.1:{port} lost mid-stream "
        "(the connection was reset)",
        1,
        id="reset-mid-stream",
    ),
    pytest.param(
        [cut_short(2)],
        "connection failed: 127.0.0.1:{port} ended the stream before the answer was complete",
        1,
        id="cut-short-mid-stream",
    ),
    pytest.param([stall(1)], "stream stalled: no data for 1 s", 1, id="stall-mid-stream"),
    pytest.param(
        [provider_error(1, "upstream overloaded")],
        "the provider reported an error: server_error: upstream overloaded",
        1,
        id="error-chunk",
    ),
    pytest.param(
        [raw(b"data: {not json\n\n")],
        "malformed stream: an event is not valid JSON: '{not json'",
        1,
        id="bad-json",
    ),
    pytest.param(
        [raw(b"data: [1, 2]\n\n")],
        "malformed stream: an event is not a JSON object",
        1,
        id="json-not-object",
    ),
    pytest.param(
        [raw(b'data: {"choices": 5}\n\n')],
        "malformed stream: `choices` is not a list",
        1,
        id="bad-shape",
    ),
    pytest.param(
        [raw(b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n')],
        "malformed stream: the response is not valid UTF-8",
        1,
        id="bad-utf8",
    ),
    pytest.param(
        [raw(b"data: " + b"x" * 40_000)],
        "malformed stream: an event longer than 32768 characters",
        1,
        id="endless-line",
    ),
    pytest.param(
        [raw(b'{"id": "x", "choices": []}', "application/json")],
        "malformed stream: expected server-sent events from 127.0.0.1:{port} "
        "but got application/json",
        1,
        id="not-a-stream",
    ),
    pytest.param([oversize(1_000_000)], "response exceeded 65536 bytes", 1, id="body-over-cap"),
]


@pytest.mark.parametrize(("replies", "expected", "attempts"), FAULTS)
async def test_fault_ends_in_clear_error(
    fake: FakeProvider, replies: list[Any], expected: str, attempts: int
) -> None:
    options = replace(FAST, max_response_bytes=65_536, max_event_chars=32_768)
    backend = OpenAIBackend(config_for(fake, read_timeout=1.0), options=options)
    fake.script(*replies)
    try:
        message, took = await failure(backend)
    finally:
        await backend.aclose()
    assert expected.replace("{port}", str(fake.port)) in message
    assert took < 10  # a hang bound: the stalls last 30 s, the read timeout is 1 s
    assert len(fake.requests) == attempts


async def test_wrong_key_says_which_variable_to_check(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, backend: OpenAIBackend
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-not-the-right-one-0000")
    message, _ = await failure(backend)
    assert message.startswith(f"HTTP 401 from 127.0.0.1:{fake.port}: authentication_error")
    assert f"check the key in the environment variable {KEY_ENV}" in message
    assert len(fake.requests) == 1


async def test_connection_refused_is_retried_then_fails() -> None:
    port = free_port()
    config = BackendConfig(
        name="down", kind="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m"
    )
    backend = OpenAIBackend(config, options=FAST)
    message, took = await failure(backend)
    assert message.startswith(f"connection failed: could not connect to 127.0.0.1:{port}")
    assert took < 20  # a hang bound: retries are few and short


async def test_oversized_body_is_abandoned(fake: FakeProvider) -> None:
    backend = OpenAIBackend(config_for(fake), options=replace(FAST, max_response_bytes=65_536))
    fake.script(oversize(50_000_000))
    try:
        message, _ = await failure(backend)
    finally:
        await backend.aclose()
    assert message == "response exceeded 65536 bytes"
    assert await asyncio.to_thread(fake.wait_disconnect, 10.0)


# -- retries before the first token; never after ------------------------------------------------

RECOVERIES = [
    pytest.param([status(500)], id="500"),
    pytest.param([status(503), status(502)], id="two-5xx"),
    pytest.param([status(429, retry_after_ms="50")], id="429-retry-after-ms"),
    pytest.param([reset_before()], id="reset-before-answer"),
    pytest.param([reset_during(0)], id="reset-before-first-token"),
    pytest.param([cut_short(0)], id="cut-before-first-token"),
]


@pytest.mark.parametrize("replies", RECOVERIES)
async def test_fault_before_first_token_is_retried(
    fake: FakeProvider, backend: OpenAIBackend, replies: list[Any]
) -> None:
    fake.script(*replies)
    events = await asyncio.wait_for(run(backend), 5)
    assert texts(events) == ["Hello", ", ", "world", "!"]
    assert events.count(Usage(12, 4)) == 1
    assert len(fake.requests) == len(replies) + 1


async def test_retry_after_is_honoured(fake: FakeProvider, backend: OpenAIBackend) -> None:
    fake.script(status(429, {"error": {"message": "slow down"}}, retry_after="1"))
    start = time.monotonic()
    assert texts(await run(backend)) == ["Hello", ", ", "world", "!"]
    first, second = fake.requests
    assert second.at - first.at >= 0.9  # waited for Retry-After (1 s) ...
    assert time.monotonic() - start < 15  # ... and not for much longer (a hang bound)


async def test_no_retry_once_text_was_delivered(fake: FakeProvider, backend: OpenAIBackend) -> None:
    fake.script(reset_during(2, "one ", "two ", "three"))
    seen: list[str] = []
    with pytest.raises(BackendError, match="connection failed"):
        async with contextlib.aclosing(backend.stream(REQUEST)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    seen.append(event.text)
    assert seen == ["one ", "two "]
    assert len(fake.requests) == 1


# -- cancellation reaches the server ------------------------------------------------------------


async def test_cancel_mid_stream_closes_the_connection(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    fake.script(stall(2))
    got_text = asyncio.Event()
    seen: list[str] = []

    async def consume() -> None:
        async for event in backend.stream(REQUEST):
            if isinstance(event, TextDelta):
                seen.append(event.text)
                if len(seen) == 2:
                    got_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_text.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.wait_disconnect, 10.0)  # the stall lasts 30 s
    assert seen == ["Hello", ", "]
    assert time.monotonic() - cancelled_at < 10


async def test_cancel_during_retry_wait_is_prompt(fake: FakeProvider) -> None:
    backend = OpenAIBackend(config_for(fake, retry_after_cap=60.0), options=FAST)
    fake.script(status(503, retry_after="30"))
    task = asyncio.create_task(run(backend))
    while not fake.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 10  # the Retry-After wait is 30 s
    assert len(fake.requests) == 1
    await backend.aclose()


async def test_leaving_the_loop_early_closes_the_stream(
    fake: FakeProvider, backend: OpenAIBackend
) -> None:
    fake.script(stall(1))
    async with contextlib.aclosing(backend.stream(REQUEST)) as events:
        async for event in events:
            assert event == TextDelta("Hello")
            break
    assert await asyncio.to_thread(fake.wait_disconnect, 10.0)


# -- the key never shows ------------------------------------------------------------------------


async def test_canary_key_appears_in_no_error_and_no_log(
    fake: FakeProvider, key: str, backend: OpenAIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Incorrect API key provided: {key}. Authorization: Bearer {key}"
    fake.script(
        status(401, {"error": {"type": "invalid_request_error", "message": echo}}),
        status(500, f"upstream said: x-api-key={key}"),
        status(500, {"error": {"message": echo}}),
        status(500, {"error": {"message": echo}}),
        provider_error(1, echo),
    )
    messages = [(await failure(backend))[0] for _ in range(3)]  # 401; 500 x3; error chunk
    assert texts(await run(backend)) == ["Hello", ", ", "world", "!"]

    secret_part = key.removeprefix("canary-")
    assert fake.requests[0].headers["authorization"] == f"Bearer {key}"  # it was really sent
    for message in messages:
        assert key not in message and secret_part not in message
        assert "[redacted]" in message
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "retrying" in logged  # the retries were logged, so the logs were really looked at
    assert key not in logged and secret_part not in logged


# -- the SSE framing every HTTP backend shares ---------------------------------------------------

SAMPLE = (
    b": keep-alive\r\n\r\n"
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\ndata:line two\n\n"
    b"data: \xe4\xb8\x96\xe7\x95\x8c \xe2\x80\xa8 done\rid: 7\rretry: 10\r\r"
    b"data: [DONE]"
)
EXPECTED = [
    SseEvent("message_start", '{"a": 1}'),
    SseEvent("message", "line one\nline two"),
    SseEvent("message", "世界 \u2028 done"),
    SseEvent("message", "[DONE]"),
]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[SseEvent]:
    """Decode and parse ``data`` cut at ``cuts`` (the way a network delivers it)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    parser = SseParser(max_event_chars=1000)
    events: list[SseEvent] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in itertools.pairwise(bounds):
        events += parser.feed(decoder.decode(data[start:end]))
    events += parser.feed(decoder.decode(b"", final=True))
    return events + parser.finish()


def test_sse_parser_reads_every_line_ending_and_field() -> None:
    assert parse_in_pieces(SAMPLE, []) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=12))
def test_sse_parser_gives_the_same_events_however_the_bytes_are_cut(cuts: list[int]) -> None:
    assert parse_in_pieces(SAMPLE, cuts) == EXPECTED


def test_sse_parser_bounds_a_line_without_an_end() -> None:
    parser = SseParser(max_event_chars=100)
    with pytest.raises(BackendError, match="longer than 100 characters"):
        for _ in range(20):
            parser.feed("x" * 10)


# -- the documented configurations ---------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_documented_example_loads_and_builds_a_request(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 7
    names = []
    for block in blocks:
        user_file = tmp_path / "config.toml"
        user_file.write_text(block, encoding="utf-8")
        settings = load_settings(user_file=user_file)
        assert settings.problems == (), block
        for config in settings.backends.values():
            if config.kind == "command":
                continue
            cls = OpenAIBackend if config.kind == "openai" else AnthropicBackend
            body = cls(config).payload(REQUEST)
            assert body["model"] == config.model and body["stream"] is True
            names.append(config.name)
    assert {"openai", "local", "llamacpp", "vllm", "claude"} <= set(names)
