"""Tool calls on the wire: the decoders' assembly, the payloads' transcripts, edit ranges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentls.agents.definition import parse_agent
from agentls.backends.anthropic import AnthropicBackend, MessageStreamDecoder
from agentls.backends.base import (
    AssistantTurn,
    BackendEvent,
    BackendRequest,
    Stop,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from agentls.backends.http import SseEvent
from agentls.backends.openai import ChatStreamDecoder, OpenAIBackend
from agentls.config import BackendConfig
from agentls.tools.edits import content_hash, position, propose
from agentls.tools.toolbox import granted_groups


def openai_feed(*deltas: dict[str, Any], finish: str = "tool_calls") -> list[BackendEvent]:
    decoder = ChatStreamDecoder()
    out: list[BackendEvent] = []
    for delta in deltas:
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        out += decoder.feed(SseEvent("message", json.dumps(chunk)))
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    out += decoder.feed(SseEvent("message", json.dumps(end)))
    assert decoder.complete
    return out


def calls(events: list[BackendEvent]) -> list[tuple[str, str, str]]:
    return [(e.call_id, e.name, e.arguments) for e in events if isinstance(e, ToolCall)]


def test_openai_standard_pieces_are_assembled_by_index() -> None:
    events = openai_feed(
        {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "read_file"}}]},
        {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "search"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"path": '}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"pattern": "x"}'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"a.py"}'}}]},
    )
    assert calls(events) == [
        ("a", "read_file", '{"path": "a.py"}'),
        ("b", "search", '{"pattern": "x"}'),
    ]
    assert events[-1] == Stop("tool_calls")


def test_openai_ollama_index_zero_for_every_call_and_no_ids() -> None:
    events = openai_feed(
        {"tool_calls": [{"index": 0, "id": "x1", "function": {"name": "a", "arguments": "{}"}}]},
        {"tool_calls": [{"index": 0, "id": "x2", "function": {"name": "b", "arguments": "{}"}}]},
        # an older server without ids: a new name starts a new call
        {"tool_calls": [{"index": 0, "function": {"name": "c", "arguments": {"k": 1}}}]},
        finish="stop",  # some servers say "stop" even after tool calls
    )
    assert calls(events) == [("x1", "a", "{}"), ("x2", "b", "{}"), ("call_3", "c", '{"k":1}')]
    assert events[-1] == Stop("tool_calls")


def test_openai_text_only_turn_ends_without_calls() -> None:
    events = openai_feed({"content": "hi"}, finish="length")
    assert calls(events) == [] and events[-1] == Stop("length")


def anthropic_feed(*events: dict[str, Any]) -> list[BackendEvent]:
    decoder = MessageStreamDecoder()
    out: list[BackendEvent] = []
    for event in events:
        out += decoder.feed(SseEvent(event["type"], json.dumps(event)))
    return out


def test_anthropic_tool_use_blocks_are_assembled() -> None:
    events = anthropic_feed(
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "read_file", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"pa'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'th": "a"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        {"type": "message_stop"},
    )
    assert calls(events) == [("t1", "read_file", '{"path": "a"}')]
    assert events[-1] == Stop("tool_calls")


def test_transcripts_in_each_api_shape() -> None:
    call = ToolCall("c1", "read_file", '{"path": "a"')  # malformed: replayed as {} to Anthropic
    request = BackendRequest(
        run_id="r",
        system="sys",
        user="task",
        model="m",
        tools=(ToolSpec("read_file", "reads", {"type": "object"}),),
        transcript=(AssistantTurn("looking", (call,)), ToolResult("c1", "read_file", "err", True)),
    )
    openai = OpenAIBackend(BackendConfig(name="o", kind="openai")).payload(request)
    assert openai["tools"][0]["function"]["name"] == "read_file"
    assert openai["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"path": "a"'
    assert openai["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "err"}
    anthropic = AnthropicBackend(BackendConfig(name="a", kind="anthropic")).payload(request)
    assert anthropic["tools"][0]["input_schema"] == {"type": "object"}
    assert anthropic["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "c1",
        "name": "read_file",
        "input": {},
    }
    assert anthropic["messages"][2]["content"][0]["is_error"] is True


@pytest.mark.parametrize(
    ("text", "offset", "expected"),
    [
        ("ab\ncd", 4, (1, 1)),
        ("ab\r\ncd", 5, (1, 1)),  # CRLF is one break
        ("ab\rcd", 4, (1, 1)),  # so is a lone CR
        ("😀x\nq", 2, (0, 3)),  # UTF-16: the emoji counts two
        ("a\u2028b", 2, (0, 2)),  # U+2028 is not an LSP line break
    ],
)
def test_positions_are_lsp_positions(text: str, offset: int, expected: tuple[int, int]) -> None:
    assert position(text, offset) == expected


def test_proposals_refuse_what_cannot_apply_cleanly() -> None:
    text = "a = 1\nb = 2\n"
    first = propose(
        "e1", path="f", uri="u", text=text, old_text="a = 1", new_text="a = 3", pending=[]
    )
    assert not isinstance(first, str) and first.base == content_hash(text)
    overlap = propose(
        "e2", path="f", uri="u", text=text, old_text="1\nb", new_text="x", pending=[first]
    )
    assert isinstance(overlap, str) and "overlaps edit e1" in overlap
    apart = propose(
        "e2", path="f", uri="u", text=text, old_text="b = 2", new_text="b", pending=[first]
    )
    assert not isinstance(apart, str)
    assert "exists" in str(
        propose("e3", path="f", uri="u", text=text, old_text="", new_text="x", pending=[])
    )
    assert "not found" in str(
        propose("e3", path="f", uri="u", text=text, old_text="zz", new_text="x", pending=[])
    )


@pytest.mark.parametrize(
    ("tools", "groups"),
    [
        (None, {"read", "search", "edit"}),  # no tools key: every group
        ((), set()),  # tools: []
        (("Read", "Grep", "Bash(git diff:*)"), {"read", "search"}),
        (("Glob", "LS", "MultiEdit", "WebFetch", "Agent(worker)"), {"search", "edit"}),
        (("read", "search", "edit/editFiles", "execute", "web", "mcp"), {"read", "search", "edit"}),
        (("codebase", "fetch", "TodoWrite"), {"search"}),  # Copilot's codebase is search
        (("WebFetch", "mcp__github__search", "github/*"), set()),  # nothing agentls offers
    ],
)
def test_granted_groups_from_claude_and_copilot_names(
    tools: tuple[str, ...] | None, groups: set[str]
) -> None:
    """Through the parser, so the definition's normalised ``tool_groups`` is what is granted."""
    front = "" if tools is None else f"tools: {list(tools)!r}\n"
    agent, problems = parse_agent(f"---\ndescription: d\n{front}---\nbody\n", Path("/ws/a.md"))
    assert agent is not None, problems
    assert granted_groups(agent) == groups
