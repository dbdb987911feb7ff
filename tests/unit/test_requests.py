"""Strict command-argument checking: no coercion, named fields."""

from __future__ import annotations

from typing import Any

import pytest

from agentls.errors import InvalidArguments
from agentls.requests import (
    MAX_FILES,
    MAX_TASK_CHARS,
    parse_ask,
    parse_edits_apply,
    parse_history_list,
    parse_run,
    parse_run_id,
    single_object,
)


def test_single_object() -> None:
    assert single_object([{"a": 1}]) == {"a": 1}
    assert single_object(None, optional=True) == {}
    assert single_object([], optional=True) == {}
    assert single_object([[]], optional=True) == {}  # Neovim sends a Lua {} as []
    for bad in (None, [], ["text"], [1, 2], [[1]]):
        with pytest.raises(InvalidArguments):
            single_object(bad)


def test_full_run_arguments() -> None:
    args = parse_run(
        {
            "agent": "reviewer",
            "task": "t",
            "uri": "file:///x.py",
            "range": {"start": {"line": 1, "character": 0}, "end": {"line": 2, "character": 3}},
            "files": ["a.py"],
            "variables": {"k": "v"},
            "dry_run": True,
        }
    )
    assert args.agent == "reviewer" and args.dry_run is True
    assert args.range is not None and args.range.end.character == 3
    assert args.files == ("a.py",) and dict(args.variables) == {"k": "v"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "agent"),
        ({"agent": ""}, "agent"),
        ({"agent": 1}, "agent"),
        ({"agent": "a", "task": 1}, "task"),
        ({"agent": "a", "uri": 5}, "uri"),
        ({"agent": "a", "uri": ["file:///x.py"]}, "uri"),
        ({"agent": "a", "dry_run": 1}, "dry_run"),
        ({"agent": "a", "files": "x"}, "files"),
        ({"agent": "a", "files": [1]}, "files"),
        ({"agent": "a", "files": [""]}, "files"),
        ({"agent": "a", "variables": {"k": 1}}, "variables"),
        ({"agent": "a", "range": {"start": {"line": 0, "character": 0}}}, "range"),
        (
            {
                "agent": "a",
                "uri": "f",
                "range": {
                    "start": {"line": True, "character": 0},
                    "end": {"line": 0, "character": 0},
                },
            },
            "range.start.line",
        ),
        (
            {
                "agent": "a",
                "uri": "f",
                "range": {"start": {"line": 3, "character": 0}, "end": {"line": 1, "character": 0}},
            },
            "range",
        ),
        (
            {
                "agent": "a",
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            },
            "range",
        ),
        ({"agent": "a", "extra": 1}, "extra"),
    ],
)
def test_bad_run_arguments_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArguments) as info:
        parse_run(raw)
    assert info.value.field == field
    assert info.value.message.startswith(field)


def test_a_task_longer_than_the_limit_is_refused() -> None:
    assert len(parse_run({"agent": "a", "task": "x" * MAX_TASK_CHARS}).task) == MAX_TASK_CHARS
    with pytest.raises(InvalidArguments) as info:
        parse_run({"agent": "a", "task": "x" * (MAX_TASK_CHARS + 1)})
    assert info.value.field == "task"


def test_preview_refuses_dry_run() -> None:
    with pytest.raises(InvalidArguments):
        parse_run({"agent": "a", "dry_run": True}, dry_run_allowed=False)


def test_history_and_ids() -> None:
    assert parse_history_list({}).limit == 50
    assert parse_history_list({"limit": 3, "status": "failed"}).status == "failed"
    assert parse_history_list({"agent": "reviewer"}).agent == "reviewer"
    for bad, field in (
        ({"limit": 0}, "limit"),
        ({"limit": "3"}, "limit"),
        ({"limit": True}, "limit"),
        ({"status": "weird"}, "status"),
        ({"status": 1}, "status"),
        ({"agent": 5}, "agent"),
        ({"agent": ["reviewer"]}, "agent"),
        ({"agents": "reviewer"}, "agents"),
    ):
        with pytest.raises(InvalidArguments) as info:
            parse_history_list(bad)
        assert info.value.field == field
    assert parse_run_id({"id": "abc"}) == "abc"
    with pytest.raises(InvalidArguments):
        parse_run_id({"id": 5})


def test_files_lists_at_most_max_files_entries() -> None:
    assert len(parse_run({"agent": "a", "files": ["x"] * MAX_FILES}).files) == MAX_FILES
    with pytest.raises(InvalidArguments) as e:
        parse_run({"agent": "a", "files": ["x"] * (MAX_FILES + 1)})
    assert e.value.field == "files"
    assert "1,000" in e.value.message


def test_ask_takes_the_run_arguments_with_copilot_variables_and_preview() -> None:
    parsed = parse_ask(
        {"agent": "plan", "uri": "file:///a.py", "variables": {"goal": "ship"}, "preview": True}
    )
    assert parsed.preview and not parsed.task_given
    assert parsed.run.agent == "plan" and dict(parsed.run.variables) == {"goal": "ship"}
    for bad, field in (
        ({"agent": "plan", "variables": {"goal": 1}}, "variables"),
        ({"agent": "plan", "dry_run": True}, "dry_run"),
        ({"agent": "plan", "preview": "yes"}, "preview"),
    ):
        with pytest.raises(InvalidArguments, match=field):
            parse_ask(bad)


def test_edits_apply_asks_for_confirmation_unless_told_not_to() -> None:
    args = parse_edits_apply({"id": "r1"})
    assert (args.id, args.edits, args.confirm) == ("r1", None, True)
    args = parse_edits_apply({"id": "r1", "edits": ["e2", "e1", "e2"], "confirm": False})
    assert (args.edits, args.confirm) == (("e2", "e1"), False)
    for raw, field in (
        ({"id": "r1", "confirm": 0}, "confirm"),
        ({"id": "r1", "confirm": "false"}, "confirm"),
        ({"id": "r1", "edits": []}, "edits"),
        ({"id": "r1", "preview": True}, "preview"),
    ):
        with pytest.raises(InvalidArguments) as info:
            parse_edits_apply(raw)
        assert str(info.value).startswith(f"{field}:"), (raw, str(info.value))
