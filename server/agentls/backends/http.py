"""What the HTTP model backends share: one pooled client, retries, limits, SSE framing, errors.

``StreamingClient`` owns one ``httpx.AsyncClient`` (created lazily, closed by ``aclose``) for one
configured backend and turns a POST with a streaming answer into ``BackendEvent``s:

* Timeouts are explicit: connect and pool waits use ``connect_timeout``; reads and writes use
  ``read_timeout``, so a provider that goes quiet mid-answer ends as "stream stalled" instead of a
  run that hangs until the engine's own timeout.
* Retries (exponential backoff with full jitter, ``Retry-After`` honoured) cover connection errors,
  429 and 5xx, and only before the first text reaches the caller: after that, a retry would repeat
  text the user has already seen. Usage figures that arrive before the first text are held back
  until then, so a retried attempt never leaves a stale figure behind.
* A server that asks to wait longer than ``retry_after_cap`` is not retried at all: waiting the cap
  and asking again would most likely earn another 429, so the run fails at once and says why.
* The body is capped (``HttpOptions.max_response_bytes``), and so is each SSE line and event.
* Every ``BackendError`` that leaves ``stream`` has been scrubbed of the key and of anything shaped
  like a credential (``agentls.redaction``); provider error bodies are shortened as well.

Provider specifics (URLs, payloads, the meaning of each event) live in ``openai.py`` and
``anthropic.py``; they plug in through a ``StreamDecoder`` per attempt.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import logging
import os
import random
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

import httpx
import orjson

from agentls import __version__
from agentls.backends.base import (
    BackendError,
    BackendEvent,
    BackendRequest,
    TextDelta,
    ToolsUnsupported,
)
from agentls.config import BackendConfig
from agentls.redaction import scrub

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True)
class HttpOptions:
    """Limits and pacing that are not user settings (tests shrink them to stay fast)."""

    max_response_bytes: int = 64 * MIB
    """Cap on one decoded response body. SSE framing costs ~100-300 bytes per token, so this leaves
    room for the longest answers while stopping a runaway or hostile server."""
    max_event_chars: int = 1 * MIB
    """Cap on one SSE line and one event's data: real events are a few hundred bytes."""
    error_body_bytes: int = 16 * 1024
    """How much of an error response is read to explain it; the rest is never downloaded."""
    error_text_chars: int = 300
    """How much of a provider's error text a message keeps."""
    backoff_base: float = 0.5
    """Seconds; the first retry waits up to this, each later one up to twice as long."""
    backoff_max: float = 8.0
    """Seconds; the ceiling of the exponential backoff (before jitter)."""
    max_connections: int = 128
    """Per backend; above the design's 64 concurrent streaming runs."""


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its type (``message`` when the server named none) and its data."""

    event: str
    data: str


class SseParser:
    """Incremental server-sent-events parser (the WHATWG framing rules, bounded).

    Lines end at CRLF, CR or LF, including a CRLF split across two chunks; ``:`` lines are comments
    (keep-alives); ``data`` lines join with newlines; a blank line dispatches. It does not use
    ``str.splitlines``, which also splits at U+2028 and other characters JSON may carry raw.
    """

    _LINE_END = re.compile(r"\r\n|\r|\n")

    def __init__(self, max_event_chars: int = HttpOptions.max_event_chars) -> None:
        """Start with empty buffers; ``max_event_chars`` bounds one line and one event's data."""
        self._max = max_event_chars
        self._parts: list[str] = []
        """Text of the current, unterminated line (kept as parts: trickled input stays linear)."""
        self._parts_chars = 0
        self._skip_lf = False
        """The last chunk ended with CR: an LF starting the next one belongs to that line end."""
        self._event = ""
        self._data: list[str] = []
        self._data_chars = 0

    def feed(self, text: str) -> list[SseEvent]:
        """Consume decoded text; return the events it completed, in order."""
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if "\n" not in text and "\r" not in text:
            self._parts.append(text)
            self._parts_chars += len(text)
            self._check(self._parts_chars)
            return []
        buffer = "".join(self._parts) + text
        self._parts.clear()
        events: list[SseEvent] = []
        start = 0
        for match in self._LINE_END.finditer(buffer):
            self._line(buffer[start : match.start()], events)
            start = match.end()
        rest = buffer[start:]
        self._skip_lf = buffer.endswith("\r")
        if rest:
            self._parts.append(rest)
        self._parts_chars = len(rest)
        self._check(self._parts_chars)
        return events

    def finish(self) -> list[SseEvent]:
        """End of input: the last line and event count even without their blank line.

        The standard drops an event that is not followed by a blank line; we keep it, because some
        servers end with ``data: [DONE]`` and close, and dropping it would turn a complete answer
        into an "ended early" error.
        """
        events: list[SseEvent] = []
        if self._parts:
            self._line("".join(self._parts), events)
            self._parts.clear()
            self._parts_chars = 0
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if not line:
            if self._data:
                events.append(SseEvent(self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            self._data_chars = 0
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
            self._check(self._data_chars)
        elif name == "event":
            self._event = value
        # "id", "retry" and unknown fields mean nothing for a one-shot answer stream.

    def _check(self, size: int) -> None:
        if size > self._max:
            raise BackendError(f"malformed stream: an event longer than {self._max} characters")


class StreamDecoder(Protocol):
    """Turns one provider's events into backend events; a new one is made for each attempt."""

    @property
    def complete(self) -> bool:
        """Whether the provider signalled the end of its answer (``[DONE]``, ``message_stop``)."""
        ...

    def feed(self, event: SseEvent) -> Sequence[BackendEvent]:
        """The backend events one SSE event carries; raise ``BackendError`` on a bad event."""
        ...


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix (only used before the first text)."""

    def __init__(self, error: BackendError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay
        """Seconds the server asked us to wait (Retry-After), else None: use the backoff."""


class _Gate:
    """Holds non-text events back until the first text, which is the point of no retry."""

    def __init__(self) -> None:
        self.started = False
        self._pending: list[BackendEvent] = []

    def admit(self, events: Sequence[BackendEvent]) -> list[BackendEvent]:
        out: list[BackendEvent] = []
        for event in events:
            if self.started:
                out.append(event)
            elif isinstance(event, TextDelta):
                self.started = True
                out.extend(self._pending)
                self._pending.clear()
                out.append(event)
            else:
                self._pending.append(event)
        return out

    def flush(self) -> list[BackendEvent]:
        out, self._pending = self._pending, []
        return out


class _Body:
    """Counts, decodes and frames one response body (one per attempt)."""

    def __init__(self, options: HttpOptions) -> None:
        self._cap = options.max_response_bytes
        self._size = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._sse = SseParser(options.max_event_chars)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._size += len(chunk)
        if self._size > self._cap:
            raise BackendError(f"response exceeded {self._cap} bytes")
        return self._sse.feed(self._decode(chunk, final=False))

    def finish(self) -> list[SseEvent]:
        return self._sse.feed(self._decode(b"", final=True)) + self._sse.finish()

    def _decode(self, chunk: bytes, *, final: bool) -> str:
        try:
            return self._utf8.decode(chunk, final)
        except UnicodeDecodeError:
            raise BackendError("malformed stream: the response is not valid UTF-8") from None


class StreamingClient:
    """One backend's HTTP client: POST a JSON body, stream the SSE answer as backend events."""

    def __init__(self, config: BackendConfig, options: HttpOptions | None = None) -> None:
        """Keep the settings; the ``httpx.AsyncClient`` is made on first use (inside the loop)."""
        self._config = config
        self._options = options or HttpOptions()
        self._http: httpx.AsyncClient | None = None
        """The pooled client, shared by every run of this backend; None until used or closed."""
        self._streaming = 0
        """Streams in progress on ``_http``; a close waits for them (see ``aclose``)."""
        self._close_requested = False
        self._random = random.Random()  # noqa: S311 - retry jitter, not cryptography

    def _client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            c = self._config
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=c.connect_timeout,
                    read=c.read_timeout,
                    write=c.read_timeout,
                    pool=c.connect_timeout,
                ),
                limits=httpx.Limits(
                    max_connections=self._options.max_connections,
                    max_keepalive_connections=32,
                    keepalive_expiry=30.0,
                ),
                headers={"user-agent": f"agentls/{__version__}"},
                follow_redirects=False,
            )
        return self._http

    async def aclose(self) -> None:
        """Close the pooled connections once no stream uses them; idempotent.

        The factory closes a backend when its configuration changes, which may happen while a run
        is streaming on it; closing the pool then would break that run for nothing. So the close
        waits for the streams in progress (cancel them first to close at once, as shutdown does).
        A later ``stream`` opens a new pool.
        """
        self._close_requested = True
        if self._streaming == 0:
            await self._close_pool()

    async def _close_pool(self) -> None:
        self._close_requested = False
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def stream(
        self,
        url: str,
        *,
        headers: httpx.Headers,
        body: Mapping[str, Any],
        decoder: Callable[[], StreamDecoder],
        secrets: Sequence[str],
    ) -> AsyncGenerator[BackendEvent, None]:
        """POST ``body`` to ``url`` and yield the decoded events, retrying while that is safe.

        Iterate it inside ``contextlib.aclosing`` (or cancel the iterating task): either closes the
        HTTP stream at once, which is how cancellation reaches the provider.

        Raises:
            BackendError: any failure, with a short message scrubbed of ``secrets``.
        """
        self._streaming += 1
        try:
            attempts = self._attempts(url, headers, body, decoder, secrets)
            async with contextlib.aclosing(attempts) as events:
                async for event in events:
                    yield event
        except BackendError as e:
            raise type(e)(scrub(e.message, secrets)) from None  # the kind (ToolsUnsupported) too
        finally:
            self._streaming -= 1
            if self._close_requested and self._streaming == 0:
                await self._close_pool()

    async def _attempts(
        self,
        url: str,
        headers: httpx.Headers,
        body: Mapping[str, Any],
        decoder: Callable[[], StreamDecoder],
        secrets: Sequence[str],
    ) -> AsyncGenerator[BackendEvent, None]:
        payload = orjson.dumps(body)
        host = host_label(url)
        attempts = self._config.max_retries + 1
        for attempt in range(attempts):
            gate = _Gate()
            answered = False
            try:
                async with self._client().stream(
                    "POST", url, content=payload, headers=headers
                ) as response:
                    await self._check_response(response, host, asks_tools=bool(body.get("tools")))
                    answered = True
                    frames = _Body(self._options)
                    events = decoder()
                    async for chunk in response.aiter_bytes():
                        for sse in frames.feed(chunk):
                            for event in gate.admit(events.feed(sse)):
                                yield event
                    for sse in frames.finish():
                        for event in gate.admit(events.feed(sse)):
                            yield event
                    if not events.complete:
                        raise _Retryable(
                            BackendError(
                                f"connection failed: {host} ended the stream before the answer "
                                "was complete"
                            )
                        )
                for event in gate.flush():
                    yield event
                return
            except _Retryable as r:
                error, delay = r.error, r.delay
            except httpx.HTTPError as e:
                error, retryable = self._transport_error(e, host, answered=answered)
                if not retryable:
                    raise error from None
                delay = None
            if gate.started or attempt + 1 >= attempts:
                raise error
            wait = delay if delay is not None else self._backoff(attempt)
            logger.info(
                "backend %s: %s; retrying in %.2f s (attempt %d of %d)",
                self._config.name,
                scrub(error.message, secrets),
                wait,
                attempt + 2,
                attempts,
            )
            await asyncio.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)], so many clients spread out."""
        ceiling = min(self._options.backoff_max, self._options.backoff_base * 2**attempt)
        return self._random.uniform(0.0, ceiling)

    async def _check_response(
        self, response: httpx.Response, host: str, *, asks_tools: bool = False
    ) -> None:
        """Raise for an answer that is not a stream: retryable for 429/5xx, final otherwise.

        A request with tools that the server refuses because the model cannot call tools (Ollama:
        "... does not support tools"; llama.cpp without ``--jinja``) raises ``ToolsUnsupported``,
        never retried: the tool loop asks again without tools.
        """
        status = response.status_code
        if 200 <= status < 300:
            mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if mime in ("application/json", "text/html"):
                detail = describe_body(await self._read_capped(response), self._options)
                raise BackendError(
                    f"malformed stream: expected server-sent events from {host} but got {mime}: "
                    f"{detail}"
                )
            return
        detail = describe_body(await self._read_capped(response), self._options)
        if asks_tools and 400 <= status < 600 and _NO_TOOLS.search(detail):
            raise ToolsUnsupported(f"HTTP {status} from {host}: {detail}")
        error = BackendError(f"HTTP {status} from {host}: {detail}{self._hint(status)}")
        if status == 429 or 500 <= status < 600:
            delay = retry_after(response.headers)
            cap = self._config.retry_after_cap
            if delay is not None and delay > cap:
                raise BackendError(
                    f"{error.message} (the server asks to retry after {delay:g} s, "
                    f"more than retry_after_cap = {cap:g} s)"
                )
            raise _Retryable(error, delay)
        raise error

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            env = self._config.api_key_env
            if env:
                return f" (check the key in the environment variable {env})"
            return " (the backend sets no api_key_env; does this server need a key?)"
        if status == 404:
            return " (check base_url and model)"
        return ""

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """Read at most ``error_body_bytes`` of a body we only need to explain a failure."""
        cap = self._options.error_body_bytes
        data = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= cap:
                    break
        except httpx.HTTPError:
            pass  # what arrived is enough to explain; the status already tells the failure
        return bytes(data[:cap])

    def _transport_error(
        self, error: httpx.HTTPError, host: str, *, answered: bool
    ) -> tuple[BackendError, bool]:
        """A short, clear message for an httpx failure, and whether another attempt may help.

        Connection failures are retryable (a restarting server, a dropped keep-alive connection);
        a stall is not, since waiting ``read_timeout`` again would only double the wait.
        ``answered`` says whether the response had started, which is what a reader needs to know
        about a lost connection. httpx gives a reset no text, so one is supplied.
        """
        c = self._config
        detail = str(error).strip() or "the connection was reset"
        if isinstance(error, httpx.ReadTimeout):
            return BackendError(f"stream stalled: no data for {c.read_timeout:g} s"), False
        if isinstance(error, httpx.ConnectTimeout):
            text = f"no connection to {host} within {c.connect_timeout:g} s"
        elif isinstance(error, httpx.PoolTimeout):
            text = f"no free connection to {host} within {c.connect_timeout:g} s"
        elif isinstance(error, httpx.WriteTimeout):
            text = f"sending the request to {host} timed out"
        elif isinstance(error, httpx.ConnectError):
            text = f"could not connect to {host} ({detail})"
        elif isinstance(error, httpx.UnsupportedProtocol):
            return BackendError(f"backend {c.name!r}: base_url must start with http(s)://"), False
        elif isinstance(error, httpx.DecodingError):
            return BackendError(f"malformed stream: could not decode the body ({detail})"), False
        elif isinstance(error, httpx.TransportError) and answered:
            text = f"connection to {host} lost mid-stream ({detail})"
        elif isinstance(error, httpx.TransportError):
            text = f"{host} closed the connection without answering ({detail})"
        else:
            return BackendError(f"connection failed: {type(error).__name__} ({detail})"), False
        return BackendError(f"connection failed: {text}"), True


def host_label(url: str) -> str:
    """``host[:port]`` of a URL, never its user-info, path or query (which may carry a key)."""
    parsed = httpx.URL(url)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}" if parsed.port else host


def endpoint(config: BackendConfig, default_base: str, path: str) -> str:
    """``base_url`` (or the provider's default) joined with ``path``; a bad URL is a clear error."""
    base = (config.base_url or default_base).strip().rstrip("/")
    try:
        parsed = httpx.URL(base)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise BackendError(
            f"backend {config.name!r}: base_url must be an http:// or https:// URL with a host"
        )
    return base + path


def read_api_key(config: BackendConfig) -> str | None:
    """The key from the environment variable ``api_key_env`` names (None when none is named).

    Read at each run, never stored: a key exported after the server started still works, and the
    value lives only as long as the request that needs it.

    Raises:
        BackendError: the variable is named but unset or empty; the message names the variable,
            never a value.
    """
    env = config.api_key_env
    if not env:
        return None
    value = os.environ.get(env, "").strip()
    if not value:
        raise BackendError(
            f"backend {config.name!r} needs an API key: the environment variable {env} is not set"
        )
    return value


def require_model(config: BackendConfig, request: BackendRequest) -> str:
    """The agent's model, else the backend's; neither is a configuration error."""
    model = request.model or config.model
    if not model:
        raise BackendError(
            f"backend {config.name!r} has no model: set `model` in its configuration "
            "or in the agent"
        )
    return model


_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie|passw")


def request_headers(config: BackendConfig, auth: Mapping[str, str]) -> httpx.Headers:
    """Accept/content-type, then the configured extra headers, then the credentials.

    ``httpx.Headers`` replaces case-insensitively, so a configured ``Authorization`` cannot end up
    sent twice beside ours.
    """
    headers = httpx.Headers({"accept": "text/event-stream", "content-type": "application/json"})
    for name, value in config.headers.items():
        headers[name] = value
    for name, value in auth.items():
        headers[name] = value
    return headers


def secrets_of(config: BackendConfig, key: str | None) -> list[str]:
    """Values to scrub from messages: the key and configured headers that look like credentials."""
    values = [v for name, v in config.headers.items() if _SECRET_HEADER.search(name)]
    return [key, *values] if key else values


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or a date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_NO_TOOLS = re.compile(
    r"(?i)(does ?n[o']t support|not support(ed)?|unsupported|no support|requires? --jinja)"
    r".{0,60}\btools?\b|\btools?\b.{0,60}(not supported|unsupported|not available|--jinja)"
    r"|--enable-auto-tool-choice"
)
"""How servers say a model cannot call tools (Ollama, llama.cpp, vLLM without a tool parser)."""

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


def describe_body(raw: bytes, options: HttpOptions) -> str:
    """A one-line account of an error body: the provider's own message when it has one.

    OpenAI-style ``{"error": {"type", "message"}}``, Anthropic's ``{"type": "error", "error":
    {...}}``, FastAPI's ``{"detail": ...}`` (vLLM) and plain ``{"message": ...}`` are recognised;
    other JSON is shown compactly, HTML without its tags. Callers scrub the result (see ``stream``);
    it is scrubbed here too, before shortening, so a cut can never leave half a key behind.
    """
    text = raw.decode("utf-8", "replace")
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    text = error_text(parsed) if parsed is not None else _TAG.sub(" ", text)
    text = _SPACE.sub(" ", scrub(text)).strip() or "(empty body)"
    limit = options.error_text_chars
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def error_text(value: Any) -> str:
    """The message inside a provider's error object, with its type when it gives one."""
    if isinstance(value, dict):
        inner = value.get("error", value)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
            kind = inner.get("type") or inner.get("code")
            if isinstance(message, str):
                return f"{kind}: {message}" if isinstance(kind, str) and kind else message
            if isinstance(message, list | dict):
                return orjson.dumps(message).decode()
        elif isinstance(inner, str):
            return inner
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def event_json(event: SseEvent) -> dict[str, Any]:
    """An event's data as a JSON object, or a ``malformed stream`` error quoting a little of it."""
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise BackendError(
            f"malformed stream: an event is not valid JSON: {_quote(event.data)}"
        ) from None
    if not isinstance(value, dict):
        raise BackendError(f"malformed stream: an event is not a JSON object: {_quote(event.data)}")
    return value


def malformed(what: str, event: SseEvent) -> NoReturn:
    """Raise the error for a JSON event whose shape is wrong."""
    raise BackendError(f"malformed stream: {what}: {_quote(event.data)}")


def token_count(value: Any) -> int | None:
    """A token figure if it is a non-negative integer, else None (not reported)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _quote(data: str) -> str:
    text = _SPACE.sub(" ", scrub(data)).strip()
    return repr(text if len(text) <= 80 else text[:79] + "…")
