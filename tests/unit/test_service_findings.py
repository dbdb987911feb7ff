"""The service's findings flow without LSP: a real command backend's output, history, restart."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentls.config import load_settings
from agentls.requests import RunArgs
from agentls.service import AgentService, NoBuffers

FAKE_AGENT = Path(__file__).resolve().parents[1] / "e2e" / "fake_agent.py"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    root = tmp_path / "ws"
    (root / ".agents").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("a = 1\nb = 2\n")
    report = tmp_path / "report.txt"
    q = sys.executable.replace("\\", "\\\\")
    agent = str(FAKE_AGENT).replace("\\", "\\\\")
    rep = str(report).replace("\\", "\\\\")
    (root / "agentls.toml").write_text(
        f'default_backend = "lines"\n[backends.lines]\nkind = "command"\n'
        f'argv = ["{q}", "{agent}", "lines", "{rep}"]\n'
    )
    (root / ".agents" / "lint.md").write_text("---\noutput: diagnostics\n---\nLint.\n")
    (root / ".agents" / "chat.md").write_text("---\ndescription: talks\n---\nTalk.\n")
    return Path(os.path.realpath(root))


@pytest.fixture
async def started(workspace: Path) -> AsyncIterator[tuple[AgentService, list[set[Path]]]]:
    service, published = await _start(workspace)
    yield service, published
    await service.shutdown()


async def _start(workspace: Path) -> tuple[AgentService, list[set[Path]]]:
    settings = load_settings([workspace], {"trusted": True})
    service = AgentService(settings, [workspace], watch=False)
    published: list[set[Path]] = []
    service.on_findings_changed = published.append
    await service.start()
    return service, published


def _report(workspace: Path, text: str) -> None:
    (workspace.parent / "report.txt").write_text(text)


async def test_a_run_replaces_the_agents_findings_and_history_keeps_them(
    workspace: Path, started: tuple[AgentService, list[set[Path]]]
) -> None:
    service, published = started
    a = workspace / "src" / "a.py"
    _report(workspace, "src/a.py:2:3: error: b\n.env:1: secret\n")
    result = await service.run(RunArgs(agent="lint", task="t"), NoBuffers())
    assert result["status"] == "succeeded"
    assert result["findings_dropped"] == 1
    assert [(f["line"], f["column"], f["severity"]) for f in result["findings"]] == [
        (1, 2, "error")
    ]
    assert published == [{a}]
    assert [f.message for f in service.findings_for(a)] == ["b"]
    stored = service.history_get(result["id"])
    assert stored["findings"] == result["findings"]
    # an agent without output: diagnostics has no findings, whatever it prints
    chat = await service.run(RunArgs(agent="chat", task="t"), NoBuffers())
    assert chat["findings"] is None and len(published) == 1


async def test_restart_restores_and_clear_persists(workspace: Path) -> None:
    a = workspace / "src" / "a.py"
    _report(workspace, "src/a.py:1: first\n")
    service, _ = await _start(workspace)
    first = await service.run(RunArgs(agent="lint", task="t"), NoBuffers())
    await service.shutdown()

    service, published = await _start(workspace)
    try:
        assert published == [{a}]
        (restored,) = service.findings_for(a)
        assert (restored.message, restored.run_id, restored.agent) == ("first", first["id"], "lint")
        assert service.clear_findings("lint", None) == {"cleared": 1, "uris": [a.as_uri()]}
    finally:
        await service.shutdown()

    service, published = await _start(workspace)
    try:
        assert published == [] and service.findings_for(a) == []
    finally:
        await service.shutdown()


async def test_a_failed_run_keeps_the_previous_findings(
    workspace: Path, started: tuple[AgentService, list[set[Path]]]
) -> None:
    service, published = started
    _report(workspace, "src/a.py:1: kept\n")
    await service.run(RunArgs(agent="lint", task="t"), NoBuffers())
    (workspace.parent / "report.txt").unlink()
    failed = await service.run(RunArgs(agent="lint", task="t"), NoBuffers())
    assert failed["status"] == "failed" and failed["findings"] is None
    assert [f.message for f in service.findings_for(workspace / "src" / "a.py")] == ["kept"]
    assert len(published) == 1


async def test_code_action_agents_and_lens_summaries(
    workspace: Path, started: tuple[AgentService, list[set[Path]]]
) -> None:
    service, _ = started
    (workspace / ".agents" / "quiet.md").write_text("---\ncode_action: false\n---\nQ.\n")
    (workspace / ".agents" / "files.md").write_text(
        '---\ninclude: [open_files]\ncontext: ["src/*.py"]\n---\nF.\n'
    )
    service.files_changed({workspace / ".agents" / "quiet.md", workspace / ".agents" / "files.md"})
    assert [d.name for d in service.code_action_agents()] == ["chat", "lint"]
    assert service.context_summary("files") == (None, False)
    assert await service.refresh_summaries(["files"], NoBuffers()) is True
    summary, fresh = service.context_summary("files")
    assert fresh and summary is not None and summary.files == 1 and summary.tokens > 0
    (workspace / "src" / "b.py").write_text("c = 3\n")
    service.files_changed({workspace / "src" / "b.py"})
    assert service.context_summary("files")[1] is False
    assert await service.refresh_summaries(["files"], NoBuffers()) is True
    assert service.context_summary("files")[0].files == 2  # type: ignore[union-attr]


async def test_a_result_document_holds_the_redacted_output(
    workspace: Path, started: tuple[AgentService, list[set[Path]]]
) -> None:
    """What ``agentls.ask`` writes comes from the run record, whose output is already redacted."""
    service, _ = started
    secret = "postgres://app:hunter2hunter2@db/app"
    _report(workspace, f"connect with {secret}\n")
    result = await service.run(RunArgs(agent="chat", task="t"), NoBuffers())
    assert result["status"] == "succeeded" and result["output_secrets"]
    document = (await service.write_result(result)).read_text()
    assert "hunter2hunter2" not in document
    assert "postgres://app:[REDACTED:url_password]@db/app" in document


async def test_file_text_reads_only_workspace_files_through_the_safe_reader(
    workspace: Path, started: tuple[AgentService, list[set[Path]]]
) -> None:
    """Diagnostics on a file the editor has not opened are placed against a bounded, contained,
    non-secret read; anything else keeps its positions as given."""
    service, _ = started
    assert service.file_text(workspace / "src" / "a.py") == "a = 1\nb = 2\n"
    (workspace / ".env").write_text("TOKEN=abc\n")
    assert service.file_text(workspace / ".env") is None
    outside = workspace.parent / "outside.txt"
    outside.write_text("not the workspace's\n")
    assert service.file_text(outside) is None
    (workspace / "src" / "big.txt").write_bytes(b"x" * (2 * 1024 * 1024))
    assert service.file_text(workspace / "src" / "big.txt") is None


async def test_the_language_catalog_takes_model_aliases_from_the_models_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.agents import language

    monkeypatch.setenv("AGENTLS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    root = tmp_path / "ws"
    (root / ".agents").mkdir(parents=True)
    (root / "agentls.toml").write_text(
        'default_backend = "local"\n'
        '[backends.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "qwen"\n'
        '[backends.other]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "big"\n'
        '[models]\nsonnet = "qwen-coder"\n[models.other]\nsonnet = "big-coder"\n'
    )
    root = Path(os.path.realpath(root))
    service = AgentService(load_settings([root], {"trusted": True}), [root], watch=False)
    catalog = service.language_catalog()
    assert catalog.model_aliases == {"sonnet": "qwen-coder"}
    text = "---\nmodel: sonnet\n---\n"
    assert ("sonnet", "alias of qwen-coder") in language.value_choices("model", catalog)
    source = root / ".agents" / "a.md"
    hover = language.hover(text, source, 1, 1, catalog)
    assert hover is not None and "Effective: `qwen-coder` is the model sent" in hover.markdown
    # the agent's own backend's [models.NAME] wins, as it does for a run
    other = language.hover("---\nbackend: other\nmodel: sonnet\n---\n", source, 2, 1, catalog)
    assert other is not None and "Effective: `big-coder` is the model sent" in other.markdown
    # a foreign name is not sent: the hover says what is, and why
    foreign = language.hover("---\nmodel: opus\n---\n", source, 1, 1, catalog)
    assert foreign is not None and "Effective: `qwen` is the model sent" in foreign.markdown
    assert "Claude Code alias" in foreign.markdown
