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

from agentls.backends.base import BackendError, BackendEvent, BackendRequest, TextDelta, Usage
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
    """

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.complete = False
        self._prompt_tokens: int | None = None

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
            if isinstance(delta, dict) and delta.get("stop_reason") == "max_tokens":
                logger.info("the answer was cut at max_tokens (stop_reason=max_tokens)")
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
        elif kind == "error":
            raise BackendError(f"the provider reported an error: {error_text(data)}")
        return []


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
            "messages": [{"role": "user", "content": request.user}],
            "stream": True,
        }
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
