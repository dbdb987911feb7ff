"""The ``openai`` backend: any server that speaks OpenAI's streaming Chat Completions API.

That covers OpenAI itself and the local servers people run (Ollama, llama.cpp's ``llama-server``,
vLLM, LM Studio) and gateways (OpenRouter, LiteLLM). This module owns the request shape
(``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options.include_usage``) and the meaning of each streamed chunk; transport, retries and
limits are ``http.StreamingClient``'s.
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Used when the configuration sets no ``base_url``."""


class ChatStreamDecoder:
    """Reads one Chat Completions stream: text from ``choices[0].delta.content``, then usage.

    The answer is complete at ``data: [DONE]`` or at a ``finish_reason`` (a few servers close
    without ``[DONE]``). ``usage`` arrives in its own chunk with an empty ``choices`` list, after
    the finish reason, because the request asks for ``stream_options.include_usage``. Some servers
    (vLLM, OpenRouter) report a failure inside the stream as ``{"error": {...}}``.
    """

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.complete = False

    def feed(self, event: SseEvent) -> list[BackendEvent]:
        """The text and usage one chunk carries."""
        data = event.data.strip()
        if data == "[DONE]":
            self.complete = True
            return []
        if not data:
            return []
        chunk = event_json(event)
        if "error" in chunk:
            raise BackendError(f"the provider reported an error: {error_text(chunk)}")
        out: list[BackendEvent] = []
        choices: Any = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            malformed("`choices` is not a list", event)
        for choice in choices or ():
            if not isinstance(choice, dict):
                malformed("a choice is not an object", event)
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore extra candidates if a server sends them
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                out.append(TextDelta(content))
            if choice.get("finish_reason"):
                self.complete = True
                if choice["finish_reason"] == "length":
                    logger.info("the answer was cut at max_tokens (finish_reason=length)")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            out.append(
                Usage(
                    prompt_tokens=token_count(usage.get("prompt_tokens")),
                    completion_tokens=token_count(usage.get("completion_tokens")),
                )
            )
        return out


class OpenAIBackend:
    """A configured OpenAI-compatible endpoint; one per configuration, shared by its runs."""

    def __init__(self, config: BackendConfig, *, options: HttpOptions | None = None) -> None:
        """Keep the configuration; nothing connects until the first run.

        Args:
            config: The backend's settings (``base_url``, ``model``, ``api_key_env``, timeouts...).
            options: Limits that are not user settings; tests shrink them.
        """
        self.name = config.name
        self.config = config
        self._http = StreamingClient(config, options)

    def payload(self, request: BackendRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (public so a dry run or ``doctor`` can show it)."""
        messages = []
        if request.system.strip():
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.user})
        body: dict[str, Any] = {
            "model": require_model(self.config, request),
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        return body

    async def stream(self, request: BackendRequest) -> AsyncGenerator[BackendEvent, None]:
        """Stream one answer: ``TextDelta``s in order, then ``Usage`` when the server reports it.

        Raises:
            BackendError: no model, a missing key variable, or any HTTP/stream failure.
        """
        url = endpoint(self.config, DEFAULT_BASE_URL, "/chat/completions")
        body = self.payload(request)
        key = read_api_key(self.config)
        headers = request_headers(self.config, {"authorization": f"Bearer {key}"} if key else {})
        events = self._http.stream(
            url,
            headers=headers,
            body=body,
            decoder=ChatStreamDecoder,
            secrets=secrets_of(self.config, key),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._http.aclose()
