"""Configuration layers, validation and trust."""

from __future__ import annotations

from pathlib import Path

from agentls.config import Limits, load_settings


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    s = load_settings([tmp_path], user_file=tmp_path / "none.toml")
    assert s.backends == {}
    assert s.default_backend is None
    assert s.limits == Limits()
    assert s.trusted is False
    assert s.problems == ()


def test_layers_merge_key_by_key(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "user.toml",
        """
default_backend = "local"
[backends.local]
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "small"
[limits]
max_files = 10
""",
    )
    ws = tmp_path / "ws"
    _write(ws / "agentls.toml", "[limits]\nmax_context_tokens = 999\n")
    s = load_settings(
        [ws],
        {"limits": {"max_files": 20}},
        {"backends": {"local": {"model": "big"}}},
        user_file=user,
    )
    assert s.limits.max_files == 20
    assert s.limits.max_context_tokens == 999
    local = s.backends["local"]
    assert (local.kind, local.model, local.base_url) == (
        "openai",
        "big",
        "http://127.0.0.1:11434/v1",
    )
    assert local.origin == "client"
    assert s.default_backend == "local"


def test_workspace_backends_are_marked_and_need_trust(tmp_path: Path) -> None:
    user = _write(tmp_path / "user.toml", '[backends.mine]\nkind = "command"\nargv = ["mine"]\n')
    ws = tmp_path / "ws"
    _write(
        ws / "agentls.toml",
        """
[backends.theirs]
kind = "command"
argv = ["theirs"]
[backends.mine]
argv = ["changed-by-workspace"]
""",
    )
    s = load_settings([ws], user_file=user)
    assert s.backends["theirs"].origin == "workspace"
    assert s.backends["mine"].origin == "workspace"  # a workspace change taints it
    assert s.trusted is False
    assert load_settings([ws], {"trusted": True}, user_file=user).trusted is True


def test_a_later_client_layer_keeps_a_workspace_backend_the_workspaces(tmp_path: Path) -> None:
    """Trust laundering: redefining a workspace backend from the client must not make it the
    client's (its argv still comes from the repository)."""
    user = _write(tmp_path / "user.toml", '[backends.mine]\nkind = "command"\nargv = ["mine"]\n')
    ws = tmp_path / "ws"
    _write(
        ws / "agentls.toml",
        '[backends.theirs]\nkind = "command"\nargv = ["theirs"]\n'
        '[backends.mine]\nargv = ["changed-by-workspace"]\n',
    )
    client = {"backends": {"theirs": {"model": "x"}, "mine": {"model": "x"}}}
    for init, conf in ((client, None), (None, client), (client, client)):
        s = load_settings([ws], init, conf, user_file=user)
        assert s.backends["theirs"].model == "x"
        assert s.backends["theirs"].origin == "workspace"
        assert s.backends["theirs"].argv == ("theirs",)
        assert s.backends["mine"].origin == "workspace"
    # a client layer that redefines a backend nobody in the workspace touched owns it
    s = load_settings([], client, user_file=user)
    assert s.backends["mine"].origin == "client"


def test_only_the_user_file_can_trust_folders(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _write(ws / "agentls.toml", f'trusted_workspaces = ["{ws}"]\n')
    user = tmp_path / "user.toml"
    assert load_settings([ws], user_file=user).trusted is False
    _write(user, f'trusted_workspaces = ["{ws}"]\n')
    assert load_settings([ws], user_file=user).trusted is True
    assert (
        load_settings([ws], {"trusted_workspaces": [str(ws)]}, user_file=tmp_path / "x").trusted
        is False
    )


def test_every_open_folder_must_be_listed_to_be_trusted(tmp_path: Path) -> None:
    """Trusting one folder does not trust another folder opened beside it."""
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    user = _write(tmp_path / "user.toml", f'trusted_workspaces = ["{mine}"]\n')
    assert load_settings([mine], user_file=user).trusted is True
    assert load_settings([mine, theirs], user_file=user).trusted is False
    _write(user, f'trusted_workspaces = ["{mine}", "{theirs}"]\n')
    assert load_settings([mine, theirs], user_file=user).trusted is True


def test_wrong_values_are_problems_and_defaults_stay(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "user.toml",
        """
colour = "red"
[limits]
max_files = "many"
cache_max_bytes = -1
run_timeout = true
[backends.a]
kind = "telepathy"
[backends.b]
kind = "command"
argv = "not a list"
[backends.c]
kind = "command"
""",
    )
    s = load_settings([], {"trusted": "yes"}, user_file=user)
    text = "\n".join(s.problems)
    for needle in [
        "colour",
        "limits.max_files",
        "limits.cache_max_bytes",
        "limits.run_timeout",
        "backends.a.kind",
        "backends.b.argv",
        "backends.c.argv",
        "trusted",
    ]:
        assert needle in text, needle
    assert s.limits == Limits()
    assert s.backends == {}
    assert s.trusted is False


def test_broken_toml_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _write(ws / "agentls.toml", "default_backend = \n")
    s = load_settings([ws], user_file=tmp_path / "none.toml")
    assert any("agentls.toml" in p for p in s.problems)


def test_default_backend_must_exist(tmp_path: Path) -> None:
    s = load_settings([], {"default_backend": "ghost"}, user_file=tmp_path / "none.toml")
    assert any("ghost" in p for p in s.problems)
    assert s.backend(None) is None
