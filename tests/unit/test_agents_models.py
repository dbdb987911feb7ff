"""Which model an agent runs on: the ``[models]`` table, foreign names, and what is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.backends.models import ANTHROPIC_ALIASES, foreign_reason, resolve_model
from agentls.config import BackendConfig, ModelAliases, load_settings
from agentls.errors import InvalidArguments
from agentls.requests import parse_run
from agentls.service import AgentService, NoBuffers

LOCAL = BackendConfig("local", "openai", model="qwen2.5-coder:7b")
CLAUDE = BackendConfig("claude", "anthropic", model="claude-sonnet-4-5")
LISTED = BackendConfig("vllm", "openai", model="big", models=("big", "small", "gpt-4.1"))
CLI = BackendConfig("cli", "command", argv=("claude", "-p"))


@pytest.mark.parametrize(
    ("requested", "backend", "model", "source"),
    [
        (None, LOCAL, "qwen2.5-coder:7b", "backend"),
        ("qwen2.5-coder:14b", LOCAL, "qwen2.5-coder:14b", "agent"),
        ("sonnet", LOCAL, "qwen2.5-coder:7b", "backend"),
        ("haiku", LOCAL, "qwen2.5-coder:7b", "backend"),
        ("GPT-4.1", LOCAL, "qwen2.5-coder:7b", "backend"),
        ("Claude Opus 4.5 (copilot)", LOCAL, "qwen2.5-coder:7b", "backend"),
        ("claude-sonnet-4-20250514", LOCAL, "qwen2.5-coder:7b", "backend"),
        ("sonnet", CLAUDE, ANTHROPIC_ALIASES["sonnet"], "alias"),
        ("opus", CLAUDE, ANTHROPIC_ALIASES["opus"], "alias"),
        ("claude-sonnet-4-20250514", CLAUDE, "claude-sonnet-4-20250514", "agent"),
        ("gpt-4.1", CLAUDE, "claude-sonnet-4-5", "backend"),
        ("small", LISTED, "small", "agent"),
        ("medium", LISTED, "big", "backend"),
        ("GPT-4.1 (copilot)", LISTED, "gpt-4.1", "alias"),
        ("sonnet", CLI, "sonnet", "agent"),  # Claude Code's CLI knows its aliases
    ],
)
def test_foreign_names_are_never_sent_as_written(
    requested: str | None, backend: BackendConfig, model: str, source: str
) -> None:
    choice = resolve_model(requested, backend, ModelAliases())
    assert (choice.model, choice.source, choice.requested) == (model, source, requested)
    if source == "backend" and requested is not None:
        assert choice.note is not None and requested in choice.note
        assert "[models]" in choice.note
    else:
        assert choice.note is None


def test_the_alias_table_wins_per_backend_then_globally() -> None:
    aliases = ModelAliases(
        common={"sonnet": "qwen2.5-coder:32b", "opus": "llama3.1:70b"},
        per_backend={"claude": {"opus": "claude-opus-4-5"}, "local": {"sonnet": "qwen3:8b"}},
    )
    assert resolve_model("sonnet", LOCAL, aliases).model == "qwen3:8b"
    assert resolve_model("opus", LOCAL, aliases).model == "llama3.1:70b"
    assert resolve_model("opus", CLAUDE, aliases).model == "claude-opus-4-5"
    assert resolve_model("sonnet", CLAUDE, aliases).model == "qwen2.5-coder:32b"  # user's choice
    assert resolve_model("haiku", CLAUDE, aliases).source == "alias"  # the built-in default


def test_a_command_backend_with_a_models_list_judges_names() -> None:
    cli = BackendConfig("cli", "command", argv=("x",), model="m1", models=("m1", "m2"))
    assert foreign_reason("m2", cli) is None
    assert resolve_model("sonnet", cli, ModelAliases()).model == "m1"


def test_models_table_in_the_configuration(tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text(
        """
default_backend = "local"
[backends.local]
kind = "openai"
model = "qwen"
models = ["qwen", "llama"]
[models]
sonnet = "llama"
"GPT-4.1" = "qwen"
wrong = 3
[models.local]
opus = "llama"
[models.nosuch]
haiku = "x"
""",
        encoding="utf-8",
    )
    settings = load_settings([], user_file=user)
    assert settings.models.common == {"sonnet": "llama", "GPT-4.1": "qwen"}
    assert settings.models.per_backend["local"] == {"opus": "llama"}
    assert settings.backends["local"].models == ("qwen", "llama")
    assert any("models.wrong" in p for p in settings.problems)
    assert any("models.nosuch: no backend named 'nosuch'" in p for p in settings.problems)


def test_an_untrusted_workspace_does_not_choose_models(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "agentls.toml").write_text('[models]\nsonnet = "exfil-model"\n', encoding="utf-8")
    untrusted = load_settings([folder], user_file=tmp_path / "none.toml")
    assert untrusted.models.common == {}
    trusted = load_settings([folder], {"trusted": True}, user_file=tmp_path / "none.toml")
    assert trusted.models.common == {"sonnet": "exfil-model"}


async def _service(
    tmp_path: Path, files: dict[str, str], options: dict[str, object]
) -> AgentService:
    root = tmp_path / "ws"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings = load_settings(
        [root], {**options, "data_dir": str(tmp_path / "data")}, user_file=tmp_path / "none.toml"
    )
    service = AgentService(settings, [root], watch=False)
    await service.start()
    return service


LOCAL_OPTIONS = {
    "default_backend": "local",
    "backends": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "qwen"}},
}


async def test_the_file_gets_a_hint_and_the_list_and_run_say_where_the_model_came_from(
    tmp_path: Path,
) -> None:
    service = await _service(
        tmp_path,
        {".claude/agents/helper.md": "---\nname: helper\ndescription: d\nmodel: sonnet\n---\nB\n"},
        LOCAL_OPTIONS,
    )
    try:
        source = service.roots.folders[0] / ".claude/agents/helper.md"
        (hint,) = service.registry.problems(source)
        assert (hint.severity, hint.line) == ("hint", 3)
        assert "'sonnet' is a Claude Code alias" in hint.message and "qwen" in hint.message
        (listed,) = service.list_agents()["agents"]
        assert (listed["model"], listed["model_requested"], listed["model_source"]) == (
            "qwen",
            "sonnet",
            "backend",
        )
        run = await service.run(
            parse_run({"agent": "helper", "task": "t", "dry_run": True}), NoBuffers()
        )
        assert (run["model"], run["model_source"]) == ("qwen", "backend")
        assert "Claude Code alias" in run["model_note"]

        # mapping the alias removes the hint and changes the answer (the list is not stale)
        mapped = load_settings(
            service.roots.folders,
            {**LOCAL_OPTIONS, "models": {"sonnet": "qwen-big"}},
            user_file=tmp_path / "none.toml",
        )
        service.update_settings(mapped)
        assert service.registry.problems(source) == []
        (listed,) = service.list_agents()["agents"]
        assert (listed["model"], listed["model_source"]) == ("qwen-big", "alias")
    finally:
        await service.shutdown()


COPILOT_PROMPT = """\
---
mode: agent
description: Explain code
---
Explain ${selection} of ${file} (${fileBasename} in ${fileDirname}) in ${workspaceFolder}
for ${input:audience:Who reads it} about ${input:topic}; also {{task}} and ${HOME}.
"""


async def test_copilot_variables_fill_in_and_a_missing_input_is_named(tmp_path: Path) -> None:
    service = await _service(
        tmp_path,
        {
            ".github/prompts/explain.prompt.md": COPILOT_PROMPT,
            ".claude/agents/shell.md": "---\nname: s\ndescription: d\n---\nUse ${file} ${HOME}\n",
            "src/app.py": "print('hi')\n",
        },
        LOCAL_OPTIONS,
    )
    try:
        (explain,) = [a for a in service.list_agents()["agents"] if a["name"] == "explain"]
        assert explain["inputs"] == [
            {"name": "audience", "placeholder": "Who reads it"},
            {"name": "topic", "placeholder": ""},
        ]
        with pytest.raises(InvalidArguments) as missing:
            await service.run(
                parse_run(
                    {
                        "agent": "explain",
                        "task": "t",
                        "dry_run": True,
                        "variables": {"audience": "a"},
                    }
                ),
                NoBuffers(),
            )
        assert missing.value.code == -32602
        assert "${input:topic}" in missing.value.message
        assert "${input:audience}" not in missing.value.message

        app = service.roots.folders[0] / "src/app.py"
        run = await service.run(
            parse_run(
                {
                    "agent": "explain",
                    "task": "the task",
                    "dry_run": True,
                    "uri": app.as_uri(),
                    "variables": {"audience": "new hires", "topic": "{{task}}"},
                }
            ),
            NoBuffers(),
        )
        first = run["prompt"].split("\n\n")[0]
        assert first == (
            "Explain  of src/app.py (app.py in src) in ws\n"
            "for new hires about {{task}}; also the task and ${HOME}."
        )
        # Copilot's variables mean nothing in a Claude Code agent: left as written
        shell = await service.run(
            parse_run({"agent": "s", "task": "t", "dry_run": True, "uri": app.as_uri()}),
            NoBuffers(),
        )
        assert shell["prompt"].startswith("Use ${file} ${HOME}")
    finally:
        await service.shutdown()
