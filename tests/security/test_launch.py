"""Finding 1: the repository must never replace the server.

A workspace that contains ``agentls/__main__.py`` (and ``__init__.py``) is opened the way the VS
Code extension opens it, with the argv, working directory and environment the extension's own code
computes; the repository's code must not run and the real server must answer. The server's own
check is tested with a genuine copy of the package placed where a repository could put it: in the
working directory of ``python -m agentls`` (refused at start) and inside a workspace folder on the
import path (refused at ``initialize``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.security.proc_helpers import (
    PACKAGE_DIR,
    Server,
    extension_spawn,
    hostile_package,
    write,
)

SAFE_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("PYTHONSAFEPATH", "PYTHONPATH", "AGENTLS_ALLOW_WORKSPACE_PACKAGE")
}
"""The test runner's environment without anything that would hide the attack."""


def _hostile_workspace(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    marker = tmp_path / "pwned.txt"
    hostile_package(ws, "agentls", marker)
    write(ws, ".agents/a.md", "---\ndescription: hi\n---\nHi\n")
    return ws, marker


@pytest.mark.parametrize("where", ["extension-folder", "workspace-folder"])
def test_extension_launch_never_runs_a_workspace_agentls(tmp_path: Path, where: str) -> None:
    """The extension's spawn parameters, with the Python extension's interpreter.

    ``workspace-folder`` puts the neutral folder inside the hostile workspace too, the way the
    extension started the server before: ``-P`` and ``PYTHONSAFEPATH`` alone must then hold.
    """
    ws, marker = _hostile_workspace(tmp_path)
    neutral = tmp_path / "extension"
    neutral.mkdir()
    spawn = extension_spawn(neutral if where == "extension-folder" else ws, sys.executable)
    if where == "extension-folder":
        assert Path(spawn["cwd"]) == neutral
    server = Server(
        tmp_path / "srv",
        argv=[spawn["command"], *spawn["args"]],
        cwd=Path(spawn["cwd"]),
        base_env=spawn["env"],
    )
    try:
        resp = server.initialize(ws, options={"trusted": False})
        assert "error" not in resp, resp
        assert resp["result"]["serverInfo"]["name"] == "agentls"
        agents = server.call("agentls.agents.list")["agents"]
        assert [a["name"] for a in agents] == ["a"]
        assert server.shutdown_and_exit() == 0
    finally:
        server.kill()
    assert not marker.exists(), "the workspace's agentls package ran"


def test_extension_spawn_parameters_keep_python_off_the_working_directory(tmp_path: Path) -> None:
    """A user-set command gets the same neutral folder and PYTHONSAFEPATH."""
    neutral = tmp_path / "extension"
    neutral.mkdir()
    spawn = extension_spawn(neutral, sys.executable, ["/venv/bin/agentls", "serve"])
    assert [spawn["command"], *spawn["args"]] == ["/venv/bin/agentls", "serve"]
    assert Path(spawn["cwd"]) == neutral
    assert spawn["env"]["PYTHONSAFEPATH"] == "1"


def test_serve_refuses_a_package_imported_from_the_working_directory(tmp_path: Path) -> None:
    """``python -m agentls serve`` started inside a folder holding an agentls copy: refused."""
    project = tmp_path / "project"
    shutil.copytree(PACKAGE_DIR, project / "agentls", ignore=shutil.ignore_patterns("__pycache__"))
    server = Server(
        tmp_path / "srv",
        argv=[sys.executable, "-m", "agentls", "serve"],
        cwd=project,
        base_env=SAFE_ENV,
    )
    try:
        code = server.wait_exit()
    finally:
        server.kill()
    assert code == 3
    stderr = server.stderr()
    assert "refuses to start" in stderr and str(project / "agentls") in stderr
    assert "-P" in stderr and "Traceback" not in stderr


def test_serve_refuses_at_initialize_a_package_inside_the_workspace(tmp_path: Path) -> None:
    """A copy inside the workspace, on the import path (``PYTHONPATH``): refused at initialize."""
    ws = tmp_path / "ws"
    vendor = ws / "vendor"
    shutil.copytree(PACKAGE_DIR, vendor / "agentls", ignore=shutil.ignore_patterns("__pycache__"))
    write(ws, ".agents/a.md", "---\ndescription: hi\n---\nHi\n")
    neutral = tmp_path / "neutral"
    neutral.mkdir()
    server = Server(
        tmp_path / "srv",
        argv=[sys.executable, "-P", "-m", "agentls", "serve"],
        cwd=neutral,
        base_env={**SAFE_ENV, "PYTHONPATH": str(vendor)},
    )
    try:
        resp = server.initialize(ws, options={"trusted": True}, ready=False)
        code = server.wait_exit()
    finally:
        server.kill()
    assert "error" in resp, resp
    assert "inside that workspace folder" in resp["error"]["message"]
    assert code == 3
    assert "refuses to serve" in server.stderr()


def test_a_developer_may_allow_a_package_inside_the_workspace(tmp_path: Path) -> None:
    """``AGENTLS_ALLOW_WORKSPACE_PACKAGE=1``: the escape hatch for working on agentls itself."""
    ws = tmp_path / "ws"
    vendor = ws / "vendor"
    shutil.copytree(PACKAGE_DIR, vendor / "agentls", ignore=shutil.ignore_patterns("__pycache__"))
    server = Server(
        tmp_path / "srv",
        argv=[sys.executable, "-P", "-m", "agentls", "serve"],
        cwd=tmp_path,
        base_env={**SAFE_ENV, "PYTHONPATH": str(vendor), "AGENTLS_ALLOW_WORKSPACE_PACKAGE": "1"},
    )
    try:
        resp = server.initialize(ws)
        assert "error" not in resp, resp
        assert server.shutdown_and_exit() == 0
    finally:
        server.kill()


def test_serve_ends_when_a_folder_holding_its_package_is_added(tmp_path: Path) -> None:
    """``workspace/didChangeWorkspaceFolders`` adding the folder that holds the package: exit 3."""
    safe = tmp_path / "safe"
    write(safe, ".agents/a.md", "---\ndescription: hi\n---\nHi\n")
    ws = tmp_path / "ws"
    vendor = ws / "vendor"
    shutil.copytree(PACKAGE_DIR, vendor / "agentls", ignore=shutil.ignore_patterns("__pycache__"))
    server = Server(
        tmp_path / "srv",
        argv=[sys.executable, "-P", "-m", "agentls", "serve"],
        cwd=tmp_path,
        base_env={**SAFE_ENV, "PYTHONPATH": str(vendor)},
    )
    try:
        assert "error" not in server.initialize(safe)
        server.notify(
            "workspace/didChangeWorkspaceFolders",
            {"event": {"added": [{"uri": ws.as_uri(), "name": "ws"}], "removed": []}},
        )
        code = server.wait_exit()
    finally:
        server.kill()
    assert code == 3
    assert "refuses to serve" in server.stderr()
