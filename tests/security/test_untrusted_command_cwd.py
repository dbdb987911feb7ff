"""Finding 2: an untrusted workspace must not run code through the user's own command backend.

The user's backend is ``python3 -m somepkg`` (from the user file: no trust needed to run it); the
repository ships ``somepkg/__main__.py``, which writes a marker. Run untrusted, the child starts
in a neutral empty folder with ``PYTHONSAFEPATH=1``, so the repository's package is never found;
only a trusted workspace is the child's working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.fakes.agent_commands import argv as fake_argv
from tests.security.proc_helpers import Server, hostile_package, toml_list, write


def _session(tmp_path: Path, backend_argv: list[str], extra: str = "") -> tuple[Server, Path]:
    ws = tmp_path / "ws"
    write(ws, ".agents/helper.md", "---\ndescription: helps\n---\nHelp with {{task}}\n")
    server = Server(tmp_path / "srv")
    server.user_config(
        f'default_backend = "mine"\n[backends.mine]\nkind = "command"\n'
        f"argv = {toml_list(backend_argv)}\n{extra}"
    )
    return server, ws


def test_untrusted_workspace_cannot_steer_a_user_python_backend(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    server, ws = _session(tmp_path, [sys.executable, "-m", "somepkg"])
    hostile_package(ws, "somepkg", marker)
    try:
        server.initialize(ws, options={"trusted": False})
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert result["status"] == "failed"
        assert "No module named somepkg" in result["error"]
        assert not marker.exists(), "the repository's somepkg ran in an untrusted workspace"
    finally:
        server.kill()
    # Trusted, the same backend runs in the workspace folder: the marker shows the attack is real.
    server, ws = _session(tmp_path / "trusted", [sys.executable, "-m", "somepkg"])
    hostile_package(ws, "somepkg", marker)
    try:
        server.initialize(ws, options={"trusted": True})
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert result["status"] == "succeeded", result
        assert marker.exists()
    finally:
        server.kill()


def test_untrusted_child_runs_in_an_empty_folder_removed_afterwards(tmp_path: Path) -> None:
    server, ws = _session(tmp_path, list(fake_argv("env")))
    try:
        server.initialize(ws, options={"trusted": False})
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert result["status"] == "succeeded", result
        env = __import__("json").loads(result["output"])
        assert env["PYTHONSAFEPATH"] == "1"
        history = server.call("agentls.history.get", {"id": result["id"]})
        assert history["status"] == "succeeded"
    finally:
        server.kill()
    cwd_server, ws2 = _session(tmp_path / "cwd", list(fake_argv("cwd")))
    try:
        cwd_server.initialize(ws2, options={"trusted": False})
        result = cwd_server.call("agentls.run", {"agent": "helper", "task": "x"})
        folder = Path(result["output"])
        assert folder.name.startswith("agentls-run-"), folder
        assert os.path.realpath(folder) != os.path.realpath(ws2)
        assert not folder.exists(), "the per-run folder was not removed"
    finally:
        cwd_server.kill()


def test_cwd_neutral_holds_even_when_trusted(tmp_path: Path) -> None:
    server, ws = _session(tmp_path, list(fake_argv("cwd")), 'cwd = "neutral"\n')
    try:
        server.initialize(ws, options={"trusted": True})
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert Path(result["output"]).name.startswith("agentls-run-"), result
    finally:
        server.kill()
    server, ws = _session(tmp_path / "ws-mode", list(fake_argv("cwd")))
    try:
        server.initialize(ws, options={"trusted": True})
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert os.path.realpath(result["output"]) == os.path.realpath(ws)
    finally:
        server.kill()
