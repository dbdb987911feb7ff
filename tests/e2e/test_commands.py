"""Every command through the real server, as an editor would call it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.e2e.harness import Session, SessionFactory, wait_until, write


async def test_agents_are_listed_with_validity(session: Session) -> None:
    result = await session.command("agentls.agents.list", {})
    agents = {a["name"]: a for a in result["agents"]}
    assert set(agents) >= {"reviewer", "failing", "missing", "slow"}
    reviewer = agents["reviewer"]
    assert reviewer["valid"] is True
    assert reviewer["description"] == "Reviews Python code"
    assert reviewer["source"] == ".agents/reviewer.md"
    assert reviewer["uri"] == session.uri(".agents/reviewer.md")
    assert reviewer["problems"] == []


async def test_dry_run_returns_the_prompt_and_manifest_without_running(session: Session) -> None:
    result = await session.command(
        "agentls.run", {"agent": "reviewer", "task": "find bugs", "dry_run": True}
    )
    assert result["status"] == "succeeded"
    assert result["output"] == ""
    assert (result["agent"], result["task"], result["dry_run"]) == ("reviewer", "find bugs", True)
    assert result["token_estimate"] == {"bytes_per_token": 4.0, "calibrated": False, "samples": 0}
    prompt = result["prompt"]
    assert "hello from disk" in prompt and "return 42" in prompt
    assert "find bugs" in prompt
    assert f"You review code in {session.root.name}. Task: find bugs" in prompt
    manifest = {m["path"]: m for m in result["manifest"]}
    assert manifest["src/app.py"]["status"] == "included"
    assert manifest["build/generated.py"]["status"] == "excluded"
    assert manifest["build/generated.py"]["reason"] == "gitignored"
    assert manifest[".env"]["status"] == "excluded"
    assert manifest[".env"]["reason"] == "secret"
    assert "canary-env-secret" not in prompt
    assert "GENERATED" not in prompt
    assert session.recorded.started == []  # nothing ran


async def test_preview_matches_dry_run(session: Session) -> None:
    args = {"agent": "reviewer", "task": "t", "uri": session.uri("src/util.py")}
    preview = await session.command("agentls.context.preview", args)
    dry = await session.command("agentls.run", {**args, "dry_run": True})
    assert preview["prompt"] == dry["prompt"]
    assert preview["manifest"] == dry["manifest"]
    first = preview["manifest"][0]
    assert (first["path"], first["source"], first["status"]) == (
        "src/util.py",
        "active_file",
        "included",
    )


async def test_selection_is_attached(session: Session) -> None:
    result = await session.command(
        "agentls.context.preview",
        {
            "agent": "reviewer",
            "task": "t",
            "uri": session.uri("src/app.py"),
            "range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 10}},
        },
    )
    first = result["manifest"][0]
    assert first["source"] == "selection"
    assert '<selection path="src/app.py"' in result["prompt"]


async def test_run_streams_output_in_order_with_progress(session: Session) -> None:
    token = "run-progress-1"
    session.client.progress_reports.setdefault(token, [])
    from lsprotocol import types

    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="agentls.run",
            arguments=[{"agent": "reviewer", "task": "alpha beta gamma"}],
            work_done_token=token,
        )
    )
    assert result["status"] == "succeeded", result
    assert result["output"].startswith("echo: alpha beta gamma")
    assert result["output"].rstrip().endswith("done")
    run_id = result["id"]
    await wait_until(lambda: session.recorded.finished)
    chunks = [o for o in session.recorded.output if o["id"] == run_id]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert len(chunks) > 1
    assert "".join(c["text"] for c in chunks) == result["output"]
    assert session.recorded.started[0]["id"] == run_id
    assert session.recorded.finished[0] == {
        "id": run_id,
        "agent": "reviewer",
        "status": "succeeded",
    }
    reports = session.client.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    middle = [r for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert middle and "alpha" in (middle[-1].message or "")


async def test_history_lists_and_gets_runs(session: Session) -> None:
    ok = await session.command("agentls.run", {"agent": "reviewer", "task": "one"})
    bad = await session.command("agentls.run", {"agent": "failing", "task": "two"})
    assert bad["status"] == "failed"
    assert "the model is unavailable" in bad["error"]
    listed = await session.command("agentls.history.list", {})
    ids = [r["id"] for r in listed["runs"]]
    assert ids[:2] == [bad["id"], ok["id"]]  # newest first
    only_failed = await session.command("agentls.history.list", {"status": "failed"})
    assert [r["id"] for r in only_failed["runs"]] == [bad["id"]]
    by_agent = await session.command("agentls.history.list", {"agent": "reviewer", "limit": 5})
    assert [r["id"] for r in by_agent["runs"]] == [ok["id"]]
    full = await session.command("agentls.history.get", {"id": ok["id"]})
    assert full["output"] == ok["output"]
    assert full["manifest"] == ok["manifest"]
    assert full["task"] == "one"


async def test_missing_program_is_a_failed_run(session: Session) -> None:
    result = await session.command("agentls.run", {"agent": "missing", "task": "x"})
    assert result["status"] == "failed"
    assert "not found" in result["error"]
    assert "agentls-no-such-program-xyz" in result["error"]


async def test_status_metrics_and_cache_clear(session: Session) -> None:
    await session.command("agentls.context.preview", {"agent": "reviewer", "task": "a"})
    await session.command("agentls.context.preview", {"agent": "reviewer", "task": "b"})
    status = await session.command("agentls.status", {})
    assert status["runs"] == []
    assert status["trusted"] is True
    assert status["index"]["state"] == "ready"
    assert status["index"]["files"] >= 2
    # the background warm-up may still be filling the cache: wait until it holds steady
    previous = -1
    while True:
        metrics = await session.command("agentls.metrics", {})
        if metrics["cache"]["entries"] == previous:
            break
        previous = metrics["cache"]["entries"]
        await asyncio.sleep(0.2)
    assert metrics["memory"]["rss_bytes"] > 0
    assert metrics["loop"]["beats"] >= 1 and metrics["loop"]["interval_ms"] == 100  # heartbeat on
    cache = metrics["cache"]
    assert cache["hits"] >= 1 and cache["entries"] >= 2
    assert 0 < cache["hit_rate"] <= 1
    cleared = await session.command("agentls.cache.clear", {})
    assert cleared["cleared"] == cache["entries"]
    after = await session.command("agentls.metrics", {})
    assert after["cache"]["entries"] == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"agent": "reviewer", "task": 5}, "task"),
        ({"agent": 3, "task": "x"}, "agent"),
        ({"agent": "reviewer", "task": "x", "dry_run": "yes"}, "dry_run"),
        ({"agent": "reviewer", "task": "x", "files": "src/app.py"}, "files"),
        ({"agent": "reviewer", "task": "x", "colour": "red"}, "colour"),
        ({"task": "x"}, "agent"),
    ],
)
async def test_wrong_argument_types_are_invalid_params(
    session: Session, args: dict[str, object], field: str
) -> None:
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.run", args)
    assert info.value.code == -32602
    assert field in info.value.message
    assert "Traceback" not in str(info.value.data or "")


async def test_unknown_agent_names_the_known_ones(session: Session) -> None:
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.run", {"agent": "nobody", "task": "x"})
    assert info.value.code == -32602
    assert "nobody" in info.value.message and "reviewer" in info.value.message


async def test_paths_outside_the_workspace_are_refused(session: Session, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/secret.py", "TOP_SECRET = 1\n")
    write(session.root, "src/link.py", "")
    (session.root / "src/link.py").unlink()
    (session.root / "src/link.py").symlink_to(outside)
    for ref in [outside.as_uri(), str(outside), "../outside/secret.py", "src/link.py"]:
        with pytest.raises(JsonRpcException) as info:
            await session.command(
                "agentls.context.preview", {"agent": "reviewer", "task": "x", "files": [ref]}
            )
        assert info.value.code == -32602
        assert "outside" in info.value.message
    preview = await session.command("agentls.context.preview", {"agent": "reviewer", "task": "x"})
    assert "TOP_SECRET" not in preview["prompt"]


async def test_history_get_unknown_id(session: Session) -> None:
    with pytest.raises(JsonRpcException) as info:
        await session.command("agentls.history.get", {"id": "nope"})
    assert info.value.code == -32602


async def test_cancel_unknown_run_is_false(session: Session) -> None:
    assert await session.command("agentls.runs.cancel", {"id": "nope"}) == {"cancelled": False}


async def test_history_survives_a_restart(open_session: SessionFactory, workspace: Path) -> None:
    async with open_session(workspace) as first:
        result = await first.command("agentls.run", {"agent": "reviewer", "task": "remember me"})
        assert result["status"] == "succeeded"
    async with open_session(workspace) as second:
        listed = await second.command("agentls.history.list", {})
        assert result["id"] in [r["id"] for r in listed["runs"]]
        full = await second.command("agentls.history.get", {"id": result["id"]})
        assert full["output"] == result["output"]
        assert full["status"] == "succeeded"


async def test_untrusted_workspace_refuses_its_own_command_backend(
    open_session: SessionFactory, workspace: Path, tmp_path: Path
) -> None:
    async with open_session(workspace, trusted=False) as s:
        result = await s.command("agentls.run", {"agent": "reviewer", "task": "x"})
        assert result["status"] == "failed"
        assert "not trusted" in result["error"]
        assert "trusted_workspaces" in result["error"]
        assert result["output"] == ""
        assert s.recorded.output == []
        dry = await s.command("agentls.run", {"agent": "reviewer", "task": "x", "dry_run": True})
        assert dry["status"] == "succeeded"  # a dry run contacts no backend: allowed
        listed = await s.command("agentls.history.list", {})
        assert listed["runs"][0]["status"] == "failed"
    # the user's own configuration may trust the folder
    config_home = tmp_path / "config-home" / "agentls"
    config_home.mkdir(parents=True, exist_ok=True)
    (config_home / "config.toml").write_text(
        f"trusted_workspaces = [{str(workspace)!r}]\n".replace("'", '"'), encoding="utf-8"
    )
    async with open_session(workspace, trusted=False) as s:
        result = await s.command("agentls.run", {"agent": "reviewer", "task": "x"})
        assert result["status"] == "succeeded", result
