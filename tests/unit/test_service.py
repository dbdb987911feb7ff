"""AgentService without LSP: trust refusal, the agent's own limits, cancelling a run request.

The service is driven directly (no server process), with real files, a real history database and
real ``command`` children, so the refusal path is checked in about a second instead of through a
whole editor session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentls.config import Settings, load_settings
from agentls.requests import RunArgs
from agentls.service import AgentService, NoBuffers

Start = Callable[[Settings, Path], Awaitable[AgentService]]
"""The ``services`` fixture (tests/unit/conftest.py): starts a service on one folder."""

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "agent_commands.py"


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Written by the workspace's backend program if it ever runs."""
    return tmp_path / "backend-ran"


@pytest.fixture
def workspace(tmp_path: Path, marker: Path) -> Path:
    """A workspace whose own agentls.toml defines the backend its agent runs on."""
    ws = tmp_path / "ws"
    program = (
        "import pathlib, sys; sys.stdin.read(); "
        f"pathlib.Path({str(marker)!r}).write_text('ran'); print('done')"
    )
    _write(
        ws,
        "agentls.toml",
        f"""
        [backends.theirs]
        kind = "command"
        argv = [{_toml(sys.executable)}, "-c", {_toml(program)}]
        """,
    )
    _write(
        ws,
        ".agents/builder.md",
        """
        ---
        backend: theirs
        ---
        Build it.
        """,
    )
    return ws


async def test_untrusted_workspace_backend_is_refused_before_it_starts(
    workspace: Path, marker: Path, tmp_path: Path, services: Start
) -> None:
    settings = load_settings([workspace], user_file=tmp_path / "no-user.toml")
    assert settings.backends["theirs"].origin == "workspace" and not settings.trusted
    service = await services(settings, workspace)
    result = await service.run(RunArgs(agent="builder", task="go"), NoBuffers())
    assert result["status"] == "failed"
    assert "'theirs' is defined by the workspace's agentls.toml" in result["error"]
    assert "not trusted" in result["error"] and "trusted_workspaces" in result["error"]
    assert result["output"] == ""
    assert not marker.exists()  # the program never ran
    [listed] = service.history.list(limit=10)
    assert (listed.id, listed.status) == (result["id"], "failed")
    # a dry run contacts no backend, so it needs no trust
    dry = await service.run(RunArgs(agent="builder", task="go", dry_run=True), NoBuffers())
    assert dry["status"] == "succeeded" and not marker.exists()


async def test_a_trusted_workspace_runs_its_own_backend(
    workspace: Path, marker: Path, tmp_path: Path, services: Start
) -> None:
    """The other side of the refusal: the same backend runs once the workspace is trusted."""
    settings = load_settings([workspace], {"trusted": True}, user_file=tmp_path / "no-user.toml")
    service = await services(settings, workspace)
    result = await service.run(RunArgs(agent="builder", task="go"), NoBuffers())
    assert result["status"] == "succeeded", result
    assert result["output"] == "done\n"
    assert marker.read_text() == "ran"


@pytest.mark.parametrize(
    ("init_options", "client_config"),
    [
        ({"backends": {"theirs": {"model": "x"}}}, None),
        (None, {"backends": {"theirs": {"model": "x"}}}),
        ({"backends": {"theirs": {"model": "x"}}}, {"backends": {"theirs": {"model": "y"}}}),
    ],
    ids=["initializationOptions", "workspace-configuration", "both"],
)
async def test_a_client_layer_does_not_launder_a_workspace_backend(
    workspace: Path,
    marker: Path,
    tmp_path: Path,
    services: Start,
    init_options: Mapping[str, Any] | None,
    client_config: Mapping[str, Any] | None,
) -> None:
    """A later layer that only touches a workspace-defined backend leaves it the workspace's:
    its argv still comes from the repository, so it still needs trust."""
    settings = load_settings(
        [workspace], init_options, client_config, user_file=tmp_path / "no-user.toml"
    )
    theirs = settings.backends["theirs"]
    assert theirs.model in ("x", "y") and theirs.origin == "workspace"
    service = await services(settings, workspace)
    result = await service.run(RunArgs(agent="builder", task="go"), NoBuffers())
    assert result["status"] == "failed" and "not trusted" in result["error"]
    assert not marker.exists()


async def test_the_agents_own_limits_reach_the_context(tmp_path: Path, services: Start) -> None:
    """``max_files`` and ``max_context_tokens`` in the agent override ``[limits]``."""
    ws = tmp_path / "ws"
    for name in ("a", "b", "c"):
        _write(ws, f"src/{name}.py", f"{name} = {'1' * 2000}\n")
    _write(
        ws,
        ".agents/few.md",
        """
        ---
        max_files: 2
        ---
        Few files.
        """,
    )
    _write(
        ws,
        ".agents/tight.md",
        """
        ---
        max_context_tokens: 300
        ---
        A small budget.
        """,
    )
    _write(ws, ".agents/wide.md", "Every file.\n")
    user = _write(tmp_path, "user.toml", '[backends.local]\nkind = "command"\nargv = ["true"]\n')
    settings = load_settings([ws], user_file=user)
    assert settings.limits.max_files >= 3 and settings.limits.max_context_tokens >= 10_000
    service = await services(settings, ws)
    files = ("src/a.py", "src/b.py", "src/c.py")

    def statuses(preview: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
        return {
            m["path"]: (m["status"], m["reason"])
            for m in preview["manifest"]
            if m["path"].startswith("src/")
        }

    wide = statuses(await service.preview(RunArgs(agent="wide", files=files), NoBuffers()))
    assert wide == {f: ("included", None) for f in files}
    few = statuses(await service.preview(RunArgs(agent="few", files=files), NoBuffers()))
    assert sorted(few.values()) == [
        ("excluded", "max_files"),
        ("included", None),
        ("included", None),
    ]
    tight = await service.preview(RunArgs(agent="tight", files=files), NoBuffers())
    assert statuses(tight) == {f: ("excluded", "budget") for f in files}  # 2,000 bytes each
    assert b"1" * 2000 not in orjson.dumps(tight["prompt"])  # the prompt comes pre-encoded


async def test_cancelling_the_request_cancels_the_run(tmp_path: Path, services: Start) -> None:
    """The editor gives up on ``agentls.run`` ($/cancelRequest): the run stops and is recorded
    as cancelled, it does not go on in the background."""
    ws = tmp_path / "ws"
    _write(ws, ".agents/stuck.md", "Never finishes.\n")
    user = _write(
        tmp_path,
        "user.toml",
        f"""
        [backends.local]
        kind = "command"
        argv = [{_toml(sys.executable)}, {_toml(str(FAKES))}, "hang"]
        """,
    )
    service = await services(load_settings([ws], user_file=user), ws)
    request = asyncio.create_task(service.run(RunArgs(agent="stuck", task="go"), NoBuffers()))
    for _ in range(1000):
        active = service.engine.active()
        if active and active[0]["output_chars"]:
            break
        await asyncio.sleep(0.01)
    [run] = service.engine.active()
    assert run["status"] == "running"
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(request, 10)
    assert request.cancelled()
    assert service.engine.active() == []
    [record] = service.history.list(limit=10)
    assert (record.id, record.status, record.output) == (run["id"], "cancelled", "partial\n")


async def test_an_untrusted_workspaces_agent_may_only_narrow_the_limits(
    tmp_path: Path, services: Start
) -> None:
    """An agent file in an untrusted workspace cannot raise what the user configured (as its
    agentls.toml cannot): its limits are held to the configuration's, and the run says so."""
    ws = tmp_path / "ws"
    for name in ("a", "b", "c"):
        _write(ws, f"src/{name}.py", f"{name} = 1\n")
    _write(
        ws,
        ".agents/greedy.md",
        """
        ---
        max_files: 100000
        timeout: 86400
        ---
        Everything, for a day.
        """,
    )
    user = _write(
        tmp_path,
        "user.toml",
        '[backends.local]\nkind = "command"\n'
        f'argv = [{_toml(sys.executable)}, "-c", "import sys; sys.stdin.read(); print(\'ok\')"]\n'
        'default_backend = "local"\n[limits]\nmax_files = 2\nrun_timeout = 60\n',
    )
    files = ("src/a.py", "src/b.py", "src/c.py")
    untrusted = load_settings([ws], user_file=user)
    assert not untrusted.trusted
    service = await services(untrusted, ws)
    preview = await service.preview(RunArgs(agent="greedy", files=files), NoBuffers())
    included = [m for m in preview["manifest"] if m["status"] == "included"]
    assert len([m for m in included if m["path"].startswith("src/")]) == 2
    result = await service.run(RunArgs(agent="greedy", task="t", files=files), NoBuffers())
    assert result["status"] == "succeeded", result
    assert any("max_files (100000) was held to limits.max_files (2)" in n for n in result["notes"])
    assert any("timeout (86400) was held to limits.run_timeout (60)" in n for n in result["notes"])
    await service.shutdown()
    # the user's own trust lets the agent's values stand
    trusted = load_settings([ws], {"trusted": True}, user_file=user)
    service = await services(trusted, ws)
    preview = await service.preview(RunArgs(agent="greedy", files=files), NoBuffers())
    included = [m for m in preview["manifest"] if m["status"] == "included"]
    assert len([m for m in included if m["path"].startswith("src/")]) == 3
