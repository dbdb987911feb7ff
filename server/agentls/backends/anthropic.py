"""The ``anthropic`` backend: Anthropic's streaming Messages API.

This module owns the request shape (``POST {base_url}/v1/messages`` with ``stream: true``, the
``x-api-key`` and ``anthropic-version`` headers, the system prompt in ``system``) and the meaning of
each event; transport, retries and limits are ``http.StreamingClient``'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from agentls.backends.base import (
    AssistantTurn,
    BackendError,
    BackendEvent,
    BackendRequest,
    Stop,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from agentls.backends.http import (
    HttpOptions,
    SseEvent,
    StreamingClient,
    endpoint,
    error_text,
    event_json,
    malformed,
    read_api_key,
    request_headers,
    require_model,
    secrets_of,
    token_count,
)
from agentls.config import BackendConfig

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Used when the configuration sets no ``base_url``."""

DEFAULT_MAX_TOKENS = 4096
"""The Messages API requires ``max_tokens``; this applies when the configuration sets none."""


class MessageStreamDecoder:
    """Reads one Messages stream.

    Text comes from ``content_block_delta`` events whose delta is a ``text_delta`` (thinking and
    tool-input deltas are not answer text). ``message_start`` carries the prompt's token count and
    ``message_delta`` the cumulative output count; each ``Usage`` event we emit carries both, so
    whoever keeps the last one has the full figure. ``message_stop`` ends the answer; an ``error``
    event (``overloaded_error``...) ends the run. Unknown events are ignored, as Anthropic's
    versioning policy asks of clients.

    A tool call is a ``tool_use`` content block: ``content_block_start`` names it, its input
    arrives as ``input_json_delta.partial_json`` pieces, ``content_block_stop`` completes it (a call
    is emitted then). ``message_delta``'s ``stop_reason`` says how the turn ended.
    """

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.complete = False
        self._prompt_tokens: int | None = None
        self._calls: dict[int, tuple[str, str, list[str]]] = {}
        """``tool_use`` blocks being assembled, by block index: ``(id, name, json pieces)``."""
        self._stop: Stop | None = None

    def feed(self, event: SseEvent) -> list[BackendEvent]:
        """The text and usage one event carries."""
        data = event_json(event)
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta = data.get("delta")
            if not isinstance(delta, dict):
                malformed("content_block_delta without a delta", event)
            text = delta.get("text")
            if delta.get("type") == "text_delta" and isinstance(text, str) and text:
                return [TextDelta(text)]
            call = self._calls.get(data.get("index"))  # type: ignore[arg-type]
            partial = delta.get("partial_json")
            if delta.get("type") == "input_json_delta" and call and isinstance(partial, str):
                call[2].append(partial)
            return []
        if kind == "content_block_start":
            block = data.get("content_block")
            index = data.get("index")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                if not isinstance(index, int):
                    malformed("a tool_use block without an index", event)
                call_id, name = block.get("id"), block.get("name")
                start = block.get("input")
                pieces = [orjson.dumps(start).decode()] if isinstance(start, dict) and start else []
                self._calls[index] = (
                    call_id if isinstance(call_id, str) and call_id else f"toolu_{index}",
                    name if isinstance(name, str) else "",
                    pieces,
                )
            return []
        if kind == "content_block_stop":
            done = self._calls.pop(data.get("index"), None)  # type: ignore[arg-type]
            if done is not None:
                return [ToolCall(done[0], done[1], "".join(done[2]))]
            return []
        if kind == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._prompt_tokens = _prompt_tokens(usage)
                return [Usage(prompt_tokens=self._prompt_tokens)]
            return []
        if kind == "message_delta":
            usage = data.get("usage")
            delta = data.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if reason == "max_tokens":
                logger.info("the answer was cut at max_tokens (stop_reason=max_tokens)")
            if isinstance(reason, str):
                self._stop = Stop(_STOP_REASONS.get(reason, "end"))
            if isinstance(usage, dict):
                if token_count(usage.get("input_tokens")) is not None:
                    self._prompt_tokens = _prompt_tokens(usage)
                return [
                    Usage(
                        prompt_tokens=self._prompt_tokens,
                        completion_tokens=token_count(usage.get("output_tokens")),
                    )
                ]
            return []
        if kind == "message_stop":
            self.complete = True
            return [self._stop or Stop("end")]
        if kind == "error":
            raise BackendError(f"the provider reported an error: {error_text(data)}")
        return []


_STOP_REASONS: dict[str, Any] = {"tool_use": "tool_calls", "max_tokens": "length"}
"""``stop_reason`` values with a meaning of their own; the others end the answer."""


def _messages(request: BackendRequest) -> list[dict[str, Any]]:
    """The conversation in Messages form: the user message, then the transcript.

    A turn's tool results go back as one user message of ``tool_result`` blocks. A call whose
    arguments were not a JSON object is replayed with an empty input (its result says why).
    """
    messages: list[dict[str, Any]] = [{"role": "user", "content": request.user}]
    results: list[dict[str, Any]] = []
    for item in request.transcript:
        if isinstance(item, AssistantTurn):
            if results:
                messages.append({"role": "user", "content": results})
                results = []
            blocks: list[dict[str, Any]] = []
            if item.text:
                blocks.append({"type": "text", "text": item.text})
            for call in item.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.call_id,
                        "name": call.name,
                        "input": _input(call),
                    }
                )
            messages.append({"role": "assistant", "content": blocks})
        elif isinstance(item, ToolResult):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": item.call_id,
                "content": item.content,
            }
            if item.is_error:
                result["is_error"] = True
            results.append(result)
    if results:
        messages.append({"role": "user", "content": results})
    return messages


def _input(call: ToolCall) -> dict[str, Any]:
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _prompt_tokens(usage: dict[str, Any]) -> int | None:
    """Input tokens including cached ones: all of them are prompt the model read.

    With prompt caching, ``input_tokens`` counts only the uncached part; the context builder's
    calibration wants the whole prompt, so the cache figures are added.
    """
    parts = [
        token_count(usage.get(name))
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    counted = [p for p in parts if p is not None]
    return sum(counted) if counted else None


class AnthropicBackend:
    """A configured Anthropic endpoint; one per configuration, shared by its runs."""

    def __init__(self, config: BackendConfig, *, options: HttpOptions | None = None) -> None:
        """Keep the configuration; nothing connects until the first run.

        Args:
            config: The backend's settings (``model``, ``api_key_env``, ``anthropic_version``...).
            options: Limits that are not user settings; tests shrink them.
        """
        self.name = config.name
        self.config = config
        self._http = StreamingClient(config, options)

    def payload(self, request: BackendRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (public so a dry run or ``doctor`` can show it)."""
        body: dict[str, Any] = {
            "model": require_model(self.config, request),
            "max_tokens": self.config.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _messages(request),
            "stream": True,
        }
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.system.strip():
            body["system"] = request.system
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body

    async def stream(self, request: BackendRequest) -> AsyncGenerator[BackendEvent, None]:
        """Stream one answer: ``TextDelta``s in order, with ``Usage`` at the start and the end.

        Raises:
            BackendError: no model, a missing key variable, an ``error`` event, or any HTTP or
                stream failure.
        """
        url = endpoint(self.config, DEFAULT_BASE_URL, "/v1/messages")
        body = self.payload(request)
        key = read_api_key(self.config)
        auth = {"anthropic-version": self.config.anthropic_version}
        if key:
            auth["x-api-key"] = key
        events = self._http.stream(
            url,
            headers=request_headers(self.config, auth),
            body=body,
            decoder=MessageStreamDecoder,
            secrets=secrets_of(self.config, key),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._http.aclose()
