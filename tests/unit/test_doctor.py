"""`agentls doctor` as a user runs it: a real process, a real fake provider on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.providers import FakeProvider

KEY = "doctor-canary-key-5d1e9a77"


def _doctor(
    workspace: Path, tmp_path: Path, *extra: str, key: str | None = KEY
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "AGENTLS_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("DOCTOR_KEY", None)
    if key is not None:
        env["DOCTOR_KEY"] = key
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agentls",
            "doctor",
            "--workspace",
            str(workspace),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _workspace(tmp_path: Path, toml: str) -> Path:
    ws = tmp_path / "ws"
    (ws / ".agents").mkdir(parents=True)
    (ws / ".agents" / "a.md").write_text("---\ndescription: d\n---\nHello\n", encoding="utf-8")
    (ws / "agentls.toml").write_text(toml, encoding="utf-8")
    return ws


def _by_name(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {f"{c['area']}:{c['name']}": c for c in json.loads(result.stdout)}


def test_healthy_http_backend(tmp_path: Path) -> None:
    with FakeProvider("openai", api_key=KEY) as fake:
        ws = _workspace(
            tmp_path,
            f"""
[backends.fake]
kind = "openai"
base_url = "{fake.base_url}"
model = "{fake.model}"
api_key_env = "DOCTOR_KEY"
""",
        )
        result = _doctor(ws, tmp_path, "--trust")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = _by_name(result)
    assert checks["backend:fake (default)"]["status"] == "ok"
    assert checks["agents:a"]["status"] == "ok"
    assert KEY not in result.stdout + result.stderr


def test_problems_exit_non_zero_and_say_why(tmp_path: Path) -> None:
    with FakeProvider("anthropic", api_key=KEY) as fake:
        ws = _workspace(
            tmp_path,
            f"""
default_backend = "claude"
[backends.claude]
kind = "anthropic"
base_url = "{fake.base_url}"
model = "no-such-model"
api_key_env = "DOCTOR_KEY"
[backends.tool]
kind = "command"
argv = ["agentls-doctor-missing-program"]
[backends.nokey]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "DOCTOR_UNSET_VARIABLE"
""",
        )
        result = _doctor(ws, tmp_path, "--trust")
    assert result.returncode == 1
    checks = _by_name(result)
    assert "no-such-model" in checks["backend:claude (default)"]["detail"]
    assert "not found" in checks["backend:tool"]["detail"]
    assert "DOCTOR_UNSET_VARIABLE" in checks["backend:nokey"]["detail"]
    assert all(c["status"] == "fail" for k, c in checks.items() if k.startswith("backend:"))
    assert KEY not in result.stdout + result.stderr


def test_untrusted_workspace_backends_are_a_warning(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, '[backends.tool]\nkind = "command"\nargv = ["python3"]\n')
    result = _doctor(ws, tmp_path)
    assert result.returncode == 0
    checks = _by_name(result)
    assert checks["config:trust"]["status"] == "warn"
    assert checks["backend:tool (default)"]["status"] == "warn"


def test_doctor_says_where_command_children_run_and_what_the_workspace_may_not_set(
    tmp_path: Path,
) -> None:
    user = tmp_path / "cfg" / "agentls" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        '[backends.mine]\nkind = "command"\nargv = ["python3"]\nmax_cpu_seconds = 60\n'
        '[backends.calm]\nkind = "command"\nargv = ["python3"]\ncwd = "neutral"\n',
        encoding="utf-8",
    )
    ws = _workspace(tmp_path, 'default_backend = "mine"\ndata_dir = "/tmp/elsewhere"\n')
    untrusted = _by_name(_doctor(ws, tmp_path))
    assert (
        "neutral empty folder (the workspace is not trusted)"
        in (untrusted["backend:mine (default)"]["detail"])
    )
    assert "max_cpu_seconds = 60" in untrusted["backend:mine (default)"]["detail"]
    assert 'cwd = "neutral"' in untrusted["backend:calm"]["detail"]
    assert untrusted["config:untrusted"]["status"] == "warn"
    assert "data_dir ignored" in untrusted["config:untrusted"]["detail"]
    trusted = _by_name(_doctor(ws, tmp_path, "--trust"))
    assert "runs in the workspace folder" in trusted["backend:mine (default)"]["detail"]
    assert 'cwd = "neutral"' in trusted["backend:calm"]["detail"]
    assert "config:untrusted" not in trusted


def _claude_agent(ws: Path, name: str, model: str) -> None:
    folder = ws / ".claude" / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(
        f"---\nname: {name}\ndescription: Use when: {name} is needed\nmodel: {model}\n---\nHi\n",
        encoding="utf-8",
    )


def _fake_backend_toml(fake: FakeProvider, extra: str = "") -> str:
    return f"""
[backends.fake]
kind = "openai"
base_url = "{fake.base_url}"
model = "{fake.model}"
api_key_env = "DOCTOR_KEY"
{extra}"""


def test_agents_models_are_checked_against_the_models_the_backend_lists(tmp_path: Path) -> None:
    with FakeProvider("openai", api_key=KEY, strict_models=True) as fake:
        # 'sonnet' is a Claude alias: it runs on the backend's own model, and doctor says so
        ws = _workspace(tmp_path, _fake_backend_toml(fake))
        _claude_agent(ws, "helper", "sonnet")
        result = _doctor(ws, tmp_path, "--trust")
        assert result.returncode == 0, result.stdout
        helper = _by_name(result)["agents:helper"]
        assert helper["status"] == "ok"
        assert f"model {fake.model} (the backend's own, instead of 'sonnet')" in helper["detail"]

        # mapped to a model the backend does not serve: a failure that names both
        (ws / "agentls.toml").write_text(
            _fake_backend_toml(fake, '[models]\nsonnet = "gpt-nonexistent"\n'), encoding="utf-8"
        )
        result = _doctor(ws, tmp_path, "--trust")
    assert result.returncode == 1
    helper = _by_name(result)["agents:helper"]
    assert helper["status"] == "fail"
    assert "'gpt-nonexistent' is not served by backend 'fake'" in helper["detail"]
    assert fake.model in helper["detail"]


def test_symlinked_agent_folders_are_found_and_links_out_are_a_warning(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, '[backends.tool]\nkind = "command"\nargv = ["python3"]\n')
    (ws / "agents").mkdir()
    (ws / "agents" / "inside.md").write_text(
        "---\nname: inside\ndescription: d\n---\nHi\n", encoding="utf-8"
    )
    (ws / ".claude").mkdir()
    (ws / ".claude" / "agents").symlink_to("../agents")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "far.md").write_text("---\nname: far\ndescription: d\n---\nHi\n", encoding="utf-8")
    (ws / ".github").mkdir()
    (ws / ".github" / "agents").symlink_to(outside)
    result = _doctor(ws, tmp_path, "--trust")
    checks = _by_name(result)
    assert checks["agents:inside"]["status"] == "ok"
    assert "agents:far" not in checks
    link = checks["agents:.github/agents"]
    assert link["status"] == "warn"
    assert "points outside the workspace folder" in link["detail"]
    assert str(outside) not in result.stdout
