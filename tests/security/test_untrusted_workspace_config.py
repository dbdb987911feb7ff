"""Finding 6: an untrusted ``agentls.toml`` may only narrow what agentls does.

The repository's file raises ``max_file_bytes``, moves the history (``data_dir``), turns the log
to DEBUG and lists itself as trusted. None of it applies until the workspace is trusted; each
ignored key is a config problem in ``agentls.status`` and a warning on ``agentls.toml``. A lowered
limit still applies. Trusted, the same file applies in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.agent_commands import argv as fake_argv
from tests.security.proc_helpers import Server, toml_list, write

USER_MAX_FILE_BYTES = 1000
"""The user's own ``max_file_bytes``; the repository tries to raise it."""
BIG = 5000
"""Bytes of a file above the user's ``max_file_bytes``, well within the token budget."""


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    stolen = tmp_path / "stolen-history"
    write(
        ws,
        "agentls.toml",
        f"""
        data_dir = "{stolen}"
        log_level = "DEBUG"
        trusted_workspaces = ["{ws}"]
        [limits]
        max_file_bytes = 1073741824
        run_timeout = 30
        """,
    )
    write(ws, ".agents/helper.md", "---\ndescription: helps\n---\nHelp with {{task}}\n")
    (ws / "big.txt").write_text("x" * BIG)
    return ws, stolen


def _server(tmp_path: Path) -> Server:
    server = Server(tmp_path / "srv")
    server.user_config(
        f'default_backend = "mine"\n[backends.mine]\nkind = "command"\n'
        f"argv = {toml_list(fake_argv('echo'))}\n"
        f"[limits]\nmax_file_bytes = {USER_MAX_FILE_BYTES}\n"
    )
    return server


def _big_entry(server: Server, ws: Path) -> dict[str, object]:
    preview = server.call(
        "agentls.context.preview",
        {"agent": "helper", "task": "x", "files": [(ws / "big.txt").as_uri()]},
    )
    return next(e for e in preview["manifest"] if e["path"].endswith("big.txt"))


def test_untrusted_workspace_config_cannot_raise_limits_or_move_history(tmp_path: Path) -> None:
    ws, stolen = _workspace(tmp_path)
    server = _server(tmp_path)
    try:
        server.initialize(ws, options={"trusted": False})
        status = server.call("agentls.status")
        assert status["trusted"] is False
        problems = "\n".join(status["config_problems"])
        for key in ("data_dir", "log_level", "trusted_workspaces", "limits.max_file_bytes"):
            assert f"{key} ignored" in problems, (key, problems)
        assert "run_timeout" not in problems  # lowered: applies
        assert _big_entry(server, ws)["status"] != "included"
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert result["status"] == "succeeded", result
        toml_uri = (ws / "agentls.toml").as_uri()
        diagnostics = server.wait_for(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == toml_uri
            )
        )["params"]["diagnostics"]
        assert any("data_dir ignored" in d["message"] for d in diagnostics)
        assert all(d["severity"] == 2 for d in diagnostics)
        assert server.shutdown_and_exit() == 0
    finally:
        server.kill()
    assert not stolen.exists(), "the repository moved the history"
    assert (tmp_path / "srv" / "data").is_dir()
    assert "DEBUG" not in server.stderr()


def test_trusted_workspace_config_applies_in_full(tmp_path: Path) -> None:
    ws, stolen = _workspace(tmp_path)
    server = _server(tmp_path)
    try:
        server.initialize(ws, options={"trusted": True})
        status = server.call("agentls.status")
        assert not any("ignored" in p for p in status["config_problems"] if "data_dir" in p)
        assert _big_entry(server, ws)["status"] == "included"
        result = server.call("agentls.run", {"agent": "helper", "task": "x"})
        assert result["status"] == "succeeded", result
        assert server.shutdown_and_exit() == 0
    finally:
        server.kill()
    assert stolen.is_dir()


def test_findings_on_agentls_toml_and_its_warnings_share_one_publish(tmp_path: Path) -> None:
    """A publish for a URI replaces the last one: a finding on an untrusted ``agentls.toml``
    must come with that file's ignored-key warnings, and clearing it must leave them."""
    import sys

    fake_agent = Path(__file__).resolve().parents[1] / "e2e" / "fake_agent.py"
    report = tmp_path / "report.txt"
    report.write_text("agentls.toml:1: error: a finding on the configuration\n")
    ws = tmp_path / "ws"
    write(ws, "agentls.toml", 'log_level = "DEBUG"\n')
    write(ws, ".agents/lint.md", "---\noutput: diagnostics\n---\nLint.\n")
    server = Server(tmp_path / "srv")
    server.user_config(
        f'default_backend = "lines"\n[backends.lines]\nkind = "command"\n'
        f"argv = {toml_list((sys.executable, str(fake_agent), 'lines', str(report)))}\n"
    )
    toml_uri = (ws / "agentls.toml").resolve().as_uri()

    def published(*wanted: str, absent: str = "\0") -> Any:
        def match(m: dict[str, Any]) -> bool:
            if m.get("method") != "textDocument/publishDiagnostics":
                return False
            if m["params"]["uri"] != toml_uri:
                return False
            text = "\n".join(d["message"] for d in m["params"]["diagnostics"])
            return all(w in text for w in wanted) and absent not in text

        return match

    try:
        server.initialize(ws, options={"trusted": False})
        server.wait_for(published("log_level ignored"))
        result = server.call("agentls.run", {"agent": "lint", "task": "x"})
        assert result["status"] == "succeeded", result
        assert [f["message"] for f in result["findings"]] == ["a finding on the configuration"]
        server.wait_for(published("log_level ignored", "a finding on the configuration"))
        cleared = server.call("agentls.findings.clear", {"agent": "lint"})
        assert cleared["cleared"] == 1
        server.wait_for(published("log_level ignored", absent="a finding"))
        assert server.shutdown_and_exit() == 0
    finally:
        server.kill()
