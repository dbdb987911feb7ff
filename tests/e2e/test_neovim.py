"""A real headless Neovim lists and runs an agent's code action (skipped when there is no nvim)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import make_workspace, write

SCRIPT = Path(__file__).with_name("neovim") / "code_action.lua"
NVIM = shutil.which("nvim")


@pytest.mark.skipif(NVIM is None, reason="nvim is not installed")
def test_neovim_lists_and_runs_an_agent_code_action(tmp_path: Path) -> None:
    assert NVIM is not None
    root = make_workspace(tmp_path / "ws")
    write(
        root,
        ".agents/explain.md",
        """
        ---
        description: Explains code
        task: explain this code
        ---
        Explain.
    """,
    )
    out = tmp_path / "result.json"
    (tmp_path / "config-home").mkdir()
    env = {
        **os.environ,
        "AGENTLS_ROOT": str(root),
        "AGENTLS_OUT": str(out),
        "AGENTLS_PYTHON": sys.executable,
        "AGENTLS_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "share"),
    }
    subprocess.run(
        [NVIM, "--headless", "--clean", "-c", f"luafile {SCRIPT}"],
        env=env,
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["error"] is None, result
    assert "Ask explain: Explains code" in result["titles"]
    assert "Ask reviewer: Reviews Python code" in result["titles"]
    assert Path(result["opened"]).is_relative_to(tmp_path / "data")
    assert any("echo: explain this code" in line for line in result["lines"])
