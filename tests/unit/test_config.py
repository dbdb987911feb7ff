"""Configuration layers, validation and trust."""

from __future__ import annotations

from pathlib import Path

from agentls.config import Limits, load_settings, with_child_limits


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


def test_untrusted_workspace_may_only_narrow(tmp_path: Path) -> None:
    user = _write(tmp_path / "user.toml", "[limits]\nmax_files = 50\nmax_memory_mb = 512\n")
    ws = tmp_path / "ws"
    _write(
        ws / "agentls.toml",
        f"""
data_dir = "{tmp_path / "elsewhere"}"
log_level = "DEBUG"
default_backend = "x"
[limits]
max_files = 500
max_context_tokens = 100
max_memory_mb = 0
max_cpu_seconds = 5
[backends.x]
kind = "command"
argv = ["x"]
""",
    )
    s = load_settings([ws], user_file=user)
    ignored = {i.key for i in s.ignored}
    assert ignored == {
        "data_dir",
        "log_level",
        "limits.max_files",
        "limits.max_memory_mb",
        "backends.x",
    }
    assert all(i.file == ws / "agentls.toml" for i in s.ignored)
    assert s.data_dir is None and s.log_level == "INFO"
    assert (s.limits.max_files, s.limits.max_context_tokens) == (50, 100)
    assert (s.limits.max_memory_mb, s.limits.max_cpu_seconds) == (512, 5)  # 0 = unlimited: higher
    assert s.default_backend == "x" and s.backends["x"].origin == "workspace"
    trusted = load_settings([ws], {"trusted": True}, user_file=user)
    assert trusted.ignored == ()
    assert trusted.limits.max_files == 500 and trusted.data_dir == tmp_path / "elsewhere"


def test_an_unauthenticated_client_cannot_define_backends_or_trust(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    options = {"trusted": True, "backends": {"b": {"kind": "command", "argv": ["id"]}}}
    s = load_settings(
        [ws], options, {"data_dir": "/tmp/x"}, user_file=tmp_path / "none", client_trusted=False
    )
    assert s.trusted is False and s.backends == {} and s.data_dir is None
    text = "\n".join(s.problems)
    assert "trusted ignored" in text and "backends ignored" in text and "data_dir ignored" in text
    assert load_settings([ws], options, user_file=tmp_path / "none").backends["b"].argv == ("id",)


def test_command_backend_cwd_and_child_limits(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "user.toml",
        """
[limits]
max_open_files = 64
[backends.a]
kind = "command"
argv = ["a"]
cwd = "neutral"
max_open_files = 0
max_cpu_seconds = 9
[backends.b]
kind = "command"
argv = ["b"]
cwd = "somewhere"
""",
    )
    s = load_settings([], user_file=user)
    assert s.backends["a"].cwd == "neutral" and s.backends["b"].cwd == "workspace"
    assert any("backends.b.cwd" in p for p in s.problems)
    a = with_child_limits(s.backends["a"], s.limits)
    assert (a.max_open_files, a.max_cpu_seconds, a.max_memory_mb) == (0, 9, 0)
    assert with_child_limits(s.backends["b"], s.limits).max_open_files == 64


def test_untrusted_workspace_cannot_disable_the_run_timeout_or_ride_a_broken_user_value(
    tmp_path: Path,
) -> None:
    user = _write(tmp_path / "user.toml", '[limits]\nmax_file_bytes = "big"\n')
    ws = tmp_path / "ws"
    _write(ws / "agentls.toml", "[limits]\nrun_timeout = 0\nmax_file_bytes = 999999999\n")
    s = load_settings([ws], user_file=user)
    assert {i.key for i in s.ignored} == {"limits.run_timeout", "limits.max_file_bytes"}
    assert s.limits.run_timeout == Limits().run_timeout
    assert s.limits.max_file_bytes == Limits().max_file_bytes


def test_untrusted_workspace_may_lower_but_not_raise_the_derived_prompt_bound(
    tmp_path: Path,
) -> None:
    user = _write(tmp_path / "user.toml", "")
    for wanted, applied in ((1_000_000, 1_000_000), (500_000_000, None)):
        ws = tmp_path / f"ws{wanted}"
        _write(ws / "agentls.toml", f"[limits]\nmax_prompt_bytes = {wanted}\n")
        s = load_settings([ws], user_file=user)
        assert s.limits.max_prompt_bytes == applied
        assert ({i.key for i in s.ignored} == {"limits.max_prompt_bytes"}) is (applied is None)
        assert load_settings([ws], {"trusted": True}, user_file=user).limits.max_prompt_bytes == (
            wanted
        )
