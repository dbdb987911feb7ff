"""``agentls.memory.profile`` through the real server: start, snapshots with their difference,
stop, and every bad argument refused."""

from __future__ import annotations

import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import Session, write

PROFILE = "agentls.memory.profile"


async def test_a_snapshot_shows_where_memory_went_since_the_last_one(session: Session) -> None:
    with pytest.raises(JsonRpcException) as info:
        await session.command(PROFILE, {"action": "snapshot"})
    assert info.value.code == -32803 and "start" in info.value.message

    started = await session.command(PROFILE, {"action": "start"})
    assert started["tracing"] is True and started["started"] is True
    first = await session.command(PROFILE, {"action": "snapshot", "top": 5})
    assert first["snapshot"] == 1 and first["compared_with"] == "start"
    assert 0 < len(first["top"]) <= 5 and len(first["types"]) == 5
    for row in first["top"]:
        assert set(row) == {"file", "line", "size", "count"}
        assert row["size"] > 0 and row["count"] > 0 and row["line"] >= 0
    assert "dict" in {t["type"] for t in first["types"]}
    assert first["traced_bytes"] > 0 and first["tracemalloc_bytes"] > 0

    # Something that keeps memory: new files of 64 KB read into the cache by a preview.
    for i in range(64):
        write(session.root, f"src/big{i}.py", f"# {i}\n" + "x = 1\n" * 11_000)
    await session.command("agentls.cache.clear", {})
    for _ in range(100):  # the watcher reports the new files; 10 s only catches a hang
        preview = await session.command(
            "agentls.context.preview", {"agent": "reviewer", "task": "t"}
        )
        if any(m["path"].startswith("src/big") for m in preview["manifest"]):
            break
        await asyncio.sleep(0.1)
    assert preview["prompt"]
    second = await session.command(PROFILE, {"action": "snapshot", "top": 200})
    assert second["snapshot"] == 2 and second["compared_with"] == "snapshot 1"
    assert second["traced_bytes"] > first["traced_bytes"]
    grown = [d for d in second["diff"] if d["size_diff"] > 0]
    assert grown and all(
        set(d) == {"file", "line", "size", "size_diff", "count", "count_diff"}
        for d in second["diff"]
    )
    # the cache's new contents are attributed to the code that read them
    assert any(d["file"].endswith(("reader.py", "loader.py", "cache.py")) for d in grown), grown[
        :10
    ]

    # what fitted the agent's token budget (about 240 KB of it) was read and kept
    loaded = sum(
        d["size_diff"] for d in grown if d["file"].endswith(("reader.py", "loader.py", "cache.py"))
    )
    assert loaded > 150_000
    # nothing new kept since: those bytes are not in the next difference
    third = await session.command(PROFILE, {"action": "snapshot", "top": 200})
    assert third["compared_with"] == "snapshot 2"
    assert not [d for d in third["diff"] if abs(d["size_diff"]) > 100_000], third["diff"][:3]

    stopped = await session.command(PROFILE, {"action": "stop"})
    assert stopped == {"tracing": False, "stopped": True}
    assert (await session.command(PROFILE, {"action": "stop"}))["stopped"] is False
    with pytest.raises(JsonRpcException) as info:
        await session.command(PROFILE, {"action": "snapshot"})
    assert info.value.code == -32803


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"action": "explode"}, "action"),
        ({}, "action"),
        ({"action": 1}, "action"),
        ({"action": "snapshot", "top": 0}, "top"),
        ({"action": "snapshot", "top": 201}, "top"),
        ({"action": "snapshot", "top": True}, "top"),
        ({"action": "snapshot", "top": "5"}, "top"),
        ({"action": "start", "colour": "red"}, "colour"),
    ],
)
async def test_bad_arguments_are_invalid_params(
    session: Session, args: dict[str, object], field: str
) -> None:
    with pytest.raises(JsonRpcException) as info:
        await session.command(PROFILE, args)
    assert info.value.code == -32602
    assert field in info.value.message
    assert "Traceback" not in str(info.value.data or "")
