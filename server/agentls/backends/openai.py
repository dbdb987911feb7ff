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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Used when the configuration sets no ``base_url``."""


class ChatStreamDecoder:
    """Reads one Chat Completions stream: text from ``choices[0].delta.content``, then usage.

    The answer is complete at ``data: [DONE]`` or at a ``finish_reason`` (a few servers close
    without ``[DONE]``). ``usage`` arrives in its own chunk with an empty ``choices`` list, after
    the finish reason, because the request asks for ``stream_options.include_usage``. Some servers
    (vLLM, OpenRouter) report a failure inside the stream as ``{"error": {...}}``.

    Tool calls come as ``choices[0].delta.tool_calls[]`` pieces and are assembled here, then
    emitted whole at the finish reason. A piece with an ``id`` not seen before starts a call (Ollama
    numbers every parallel call ``index: 0``, each arriving whole with its own id); a piece without
    an ``id`` continues the call with its ``index``, or the latest call when it has no ``index``
    (some Gemini-compatible servers omit it), unless it names a function where that call already
    has a name (a name only comes in a call's first piece). Arguments are concatenated as text;
    a server that sends them as an object has them serialised.
    """

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.complete = False
        self._calls: list[dict[str, Any]] = []
        """Calls being assembled: ``{"id", "index", "name", "args": [str]}`` in arrival order."""

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
            pieces = delta.get("tool_calls") if isinstance(delta, dict) else None
            if isinstance(pieces, list):
                for piece in pieces:
                    if not isinstance(piece, dict):
                        malformed("a tool call is not an object", event)
                    self._take(piece)
            finish = choice.get("finish_reason")
            if finish:
                self.complete = True
                if finish == "length":
                    logger.info("the answer was cut at max_tokens (finish_reason=length)")
                out.extend(self._finish(finish))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            out.append(
                Usage(
                    prompt_tokens=token_count(usage.get("prompt_tokens")),
                    completion_tokens=token_count(usage.get("completion_tokens")),
                )
            )
        return out

    def _take(self, piece: dict[str, Any]) -> None:
        """Add one ``tool_calls[]`` piece to the call it belongs to."""
        call_id = piece.get("id") if isinstance(piece.get("id"), str) and piece["id"] else None
        index = piece.get("index") if isinstance(piece.get("index"), int) else None
        call = None
        if call_id is not None:
            call = next((c for c in self._calls if c["id"] == call_id), None)
        elif index is not None:
            call = next((c for c in reversed(self._calls) if c["index"] == index), None)
        elif self._calls:
            call = self._calls[-1]
        function = piece.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if call is not None and call_id is None and name and call["name"]:
            call = None  # a name only comes in a call's first piece: this is another call
        if call is None:
            call = {"id": call_id, "index": index, "name": "", "args": []}
            self._calls.append(call)
        if not isinstance(function, dict):
            return
        if isinstance(name, str) and name:
            call["name"] = name
        args = function.get("arguments")
        if isinstance(args, str):
            call["args"].append(args)
        elif isinstance(args, dict):
            call["args"].append(orjson.dumps(args).decode())

    def _finish(self, reason: str) -> list[BackendEvent]:
        """The assembled calls, then how the turn stopped."""
        out: list[BackendEvent] = []
        for n, call in enumerate(self._calls, start=1):
            call_id = call["id"] or f"call_{n}"
            out.append(ToolCall(call_id, call["name"], "".join(call["args"])))
        if self._calls:
            stop = Stop("tool_calls")
        else:
            stop = Stop("length" if reason == "length" else "end")
        self._calls = []
        out.append(stop)
        return out


def _messages(request: BackendRequest) -> list[dict[str, Any]]:
    """The conversation in Chat Completions form: system, user, then the transcript."""
    messages: list[dict[str, Any]] = []
    if request.system.strip():
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.user})
    for item in request.transcript:
        if isinstance(item, AssistantTurn):
            # "" rather than null: local servers' chat templates choke on a null content
            message: dict[str, Any] = {"role": "assistant", "content": item.text}
            if item.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments or "{}"},
                    }
                    for call in item.tool_calls
                ]
            messages.append(message)
        elif isinstance(item, ToolResult):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.content})
    return messages


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
        body: dict[str, Any] = {
            "model": require_model(self.config, request),
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
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
