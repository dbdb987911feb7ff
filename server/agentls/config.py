"""Configuration: typed, defaulted, frozen, validated once at the edge.

Layers, lowest first: built-in defaults, the user file (``$XDG_CONFIG_HOME/agentls/config.toml``),
each workspace folder's ``agentls.toml``, the client's ``initializationOptions`` and the client's
``workspace/configuration`` answer for the ``agentls`` section. Later layers override earlier
ones key by key (tables merge, other values replace).

Trust: a backend that the workspace's own ``agentls.toml`` defines or changes is marked
``origin="workspace"`` and may run only when the workspace is trusted (the client says
``trusted: true`` in ``initializationOptions``, or the user file lists the folder under
``trusted_workspaces``). Settings from the user file and from the client need no trust: the client
is the user's editor, which applies its own trust rules to settings a workspace carries.

Model aliases: ``[models]`` maps model names written in agent files (``sonnet``, a Copilot display
name...) to models a backend serves, globally (``sonnet = "qwen2.5-coder:7b"``) or per backend
(``[models.claude] opus = "claude-opus-4-1"``). A workspace's own ``[models]`` counts only when the
workspace is trusted; the rules that use the table are in ``backends.models``.

Nothing here reads an API key: backends name the environment variable that holds it
(``api_key_env``) and read it only when they connect.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from agentls.workspace.reader import read_regular

BackendKind = Literal["openai", "anthropic", "command"]
Origin = Literal["default", "user", "workspace", "client"]

BACKEND_KINDS: tuple[str, ...] = ("openai", "anthropic", "command")
WORKSPACE_CONFIG_NAME = "agentls.toml"
"""The file name of a workspace folder's own configuration."""


@dataclass(frozen=True)
class BackendConfig:
    """One named backend. Which fields matter depends on ``kind``."""

    name: str
    kind: BackendKind
    origin: Origin = "default"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the key; the key itself is never stored."""
    argv: tuple[str, ...] = ()
    """``command`` backends: the program and its arguments, run without a shell."""
    models: tuple[str, ...] = ()
    """The models this backend serves, when known: a model outside it is never sent."""
    env: tuple[str, ...] = ()
    """Names of environment variables passed to a ``command`` child besides the safe base set."""
    headers: Mapping[str, str] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 2
    retry_after_cap: float = 30.0
    anthropic_version: str = "2023-06-01"


@dataclass(frozen=True)
class Limits:
    """Bounds on memory, disk, concurrency and time."""

    cache_max_bytes: int = 256 * 1024 * 1024
    max_file_bytes: int = 1024 * 1024
    max_concurrent_runs: int = 8
    max_queued_runs: int = 256
    history_max_entries: int = 10_000
    history_max_bytes: int = 64 * 1024 * 1024
    max_files: int = 200
    """Default for agents that do not set ``max_files``."""
    max_context_tokens: int = 60_000
    """Default for agents that do not set ``max_context_tokens``."""
    run_timeout: float = 300.0
    """Seconds; default for agents that do not set ``timeout``."""
    max_output_bytes: int = 8 * 1024 * 1024
    """A run's output beyond this is cut and the run fails."""
    max_prompt_bytes: int | None = None
    """The expanded prompt (body with its variables filled in, plus the task) must stay under
    this many bytes, or the request fails before the prompt is built. None sizes it from each
    run's token budget (``context.builder.prompt_bytes_limit``)."""


@dataclass(frozen=True)
class ModelAliases:
    """The ``[models]`` table: model names in agent files mapped to models backends serve."""

    common: Mapping[str, str] = field(default_factory=dict)
    """Aliases for every backend (``[models] sonnet = "..."``)."""
    per_backend: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Aliases for one backend (``[models.NAME] sonnet = "..."``); they win over ``common``."""


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one server (or one ``agentls run``)."""

    default_backend: str | None = None
    backends: Mapping[str, BackendConfig] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    models: ModelAliases = field(default_factory=ModelAliases)
    """Model aliases (``[models]``)."""
    trusted: bool = False
    """Whether backends defined by the workspace may run."""
    data_dir: Path | None = None
    """Where history and calibration live; default ``$XDG_DATA_HOME/agentls``."""
    log_level: str = "INFO"
    problems: tuple[str, ...] = ()
    """What was wrong in the configuration (each layer's file and key); shown, never fatal."""

    def backend(self, name: str | None) -> BackendConfig | None:
        """The backend called ``name``, or the default one when ``name`` is None."""
        key = name or self.default_backend
        return self.backends.get(key) if key else None


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/agentls/config.toml`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agentls" / "config.toml"


def default_data_dir() -> Path:
    """``$AGENTLS_DATA_DIR``, else ``$XDG_DATA_HOME/agentls`` (``~/.local/share`` when unset)."""
    explicit = os.environ.get("AGENTLS_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentls"


@dataclass
class _Layer:
    origin: Origin
    label: str
    data: Mapping[str, Any]


MAX_CONFIG_FILE_BYTES = 1024 * 1024
"""A configuration file larger than this is not read (a problem says so)."""


def _read_toml(path: Path, problems: list[str], within: Path | None = None) -> dict[str, Any]:
    """A TOML file's table, through the safe reader; ``{}`` (and a problem) when it cannot be had.

    ``within`` is the workspace folder for its ``agentls.toml``: a symlink out of it (to
    ``/dev/stdin``, the editor's own message pipe) or anything but a regular file is refused
    without being opened for reading. The user's own file is not the workspace's (None).
    """
    folders = (Path(os.path.realpath(within)),) if within is not None else None
    got = read_regular(
        path, max_bytes=MAX_CONFIG_FILE_BYTES, within=folders, follow_symlink=True
    )
    if got == "missing":
        return {}
    if isinstance(got, str):
        problems.append(f"{path}: not read ({got.replace('_', ' ')})")
        return {}
    try:
        return tomllib.loads(got.data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        problems.append(f"{path}: {e}")
        return {}


def load_settings(
    folders: Sequence[Path] = (),
    init_options: Mapping[str, Any] | None = None,
    client_config: Mapping[str, Any] | None = None,
    *,
    user_file: Path | None = None,
) -> Settings:
    """Merge every layer into one ``Settings``; problems are collected, never raised."""
    problems: list[str] = []
    layers: list[_Layer] = []
    ufile = user_file if user_file is not None else user_config_path()
    user = _read_toml(ufile, problems)
    layers.append(_Layer("user", str(ufile), user))
    for folder in folders:
        wfile = folder / WORKSPACE_CONFIG_NAME
        layers.append(_Layer("workspace", str(wfile), _read_toml(wfile, problems, folder)))
    init = dict(init_options or {})
    trusted_flag = init.pop("trusted", None)
    if trusted_flag is not None and not isinstance(trusted_flag, bool):
        problems.append("initializationOptions.trusted: expected a boolean")
        trusted_flag = None
    layers.append(_Layer("client", "initializationOptions", init))
    layers.append(_Layer("client", "workspace/configuration", dict(client_config or {})))

    trusted = trusted_flag is True or _listed_as_trusted(user.get("trusted_workspaces"), folders)
    merged: dict[str, Any] = {}
    backend_origin: dict[str, Origin] = {}
    for layer in layers:
        data = dict(layer.data)
        if layer.origin != "user":
            data.pop("trusted_workspaces", None)  # only the user may say which folders to trust
        if layer.origin == "workspace" and not trusted:
            data.pop("models", None)  # an untrusted repository does not choose models
        for name in (data.get("backends") or {}) if isinstance(data.get("backends"), dict) else {}:
            prev = backend_origin.get(name)
            if layer.origin == "workspace" or prev != "workspace":
                backend_origin[name] = layer.origin
        _deep_merge(merged, data)

    return _build(merged, backend_origin, trusted, problems)


def _listed_as_trusted(value: Any, folders: Sequence[Path]) -> bool:
    if not isinstance(value, list) or not folders:
        return False
    listed = {os.path.realpath(os.path.expanduser(str(v))) for v in value if isinstance(v, str)}
    return all(os.path.realpath(f) in listed for f in folders)


def _deep_merge(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value)
        else:
            into[key] = value


_TOP_KEYS = {
    "default_backend",
    "backends",
    "limits",
    "models",
    "data_dir",
    "log_level",
    "trusted_workspaces",
}


def _build(
    merged: Mapping[str, Any],
    origins: Mapping[str, Origin],
    trusted: bool,
    problems: list[str],
) -> Settings:
    for key in merged:
        if key not in _TOP_KEYS:
            problems.append(f"unknown setting {key!r} ignored")
    default_backend = merged.get("default_backend")
    if default_backend is not None and not isinstance(default_backend, str):
        problems.append("default_backend: expected a string")
        default_backend = None

    backends: dict[str, BackendConfig] = {}
    raw_backends = merged.get("backends", {})
    if not isinstance(raw_backends, Mapping):
        problems.append("backends: expected a table")
        raw_backends = {}
    for name, raw in raw_backends.items():
        backend = _backend(name, raw, origins.get(name, "default"), problems)
        if backend is not None:
            backends[name] = backend
    if default_backend is None and len(backends) == 1:
        default_backend = next(iter(backends))
    if default_backend is not None and default_backend not in backends:
        problems.append(f"default_backend: no backend named {default_backend!r}")

    limits = _dataclass_from(Limits, merged.get("limits", {}), "limits", problems)
    models = _model_aliases(merged.get("models", {}), problems)
    for name in models.per_backend:
        if name not in backends:
            problems.append(f"models.{name}: no backend named {name!r}")
    data_dir_raw = merged.get("data_dir")
    data_dir = None
    if isinstance(data_dir_raw, str) and data_dir_raw:
        data_dir = Path(os.path.expanduser(data_dir_raw))
    elif data_dir_raw is not None:
        problems.append("data_dir: expected a string")
    log_level = merged.get("log_level", "INFO")
    if not isinstance(log_level, str) or log_level.upper() not in (
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
    ):
        problems.append("log_level: expected one of DEBUG, INFO, WARNING, ERROR")
        log_level = "INFO"
    return Settings(
        default_backend=default_backend,
        backends=backends,
        limits=limits,
        models=models,
        trusted=trusted,
        data_dir=data_dir,
        log_level=log_level.upper(),
        problems=tuple(problems),
    )


def _backend(name: str, raw: Any, origin: Origin, problems: list[str]) -> BackendConfig | None:
    where = f"backends.{name}"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a table")
        return None
    kind = raw.get("kind")
    if kind not in BACKEND_KINDS:
        problems.append(f"{where}.kind: expected one of {', '.join(BACKEND_KINDS)}")
        return None
    values = dict(raw)
    for key in ("argv", "env", "models"):
        if key in values:
            seq = values[key]
            if not isinstance(seq, list) or not all(isinstance(s, str) for s in seq):
                problems.append(f"{where}.{key}: expected a list of strings")
                return None
            values[key] = tuple(seq)
    if kind == "command" and not values.get("argv"):
        problems.append(f"{where}.argv: a command backend needs a non-empty argv")
        return None
    headers = values.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        problems.append(f"{where}.headers: expected a table of strings")
        return None
    values["headers"] = dict(headers)
    values["name"] = name
    values["origin"] = origin
    backend: BackendConfig | None = _dataclass_from(BackendConfig, values, where, problems)
    return backend


def _model_aliases(raw: Any, problems: list[str]) -> ModelAliases:
    """``[models]``: string values are aliases for every backend, tables are one backend's."""
    if not isinstance(raw, Mapping):
        problems.append("models: expected a table")
        return ModelAliases()
    common: dict[str, str] = {}
    per_backend: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value.strip():
            common[key] = value.strip()
        elif isinstance(value, Mapping):
            table: dict[str, str] = {}
            for alias, target in value.items():
                if isinstance(target, str) and target.strip():
                    table[alias] = target.strip()
                else:
                    problems.append(f"models.{key}.{alias}: expected a model name (a string)")
            per_backend[key] = table
        else:
            problems.append(
                f"models.{key}: expected a model name, or a table of aliases for backend {key!r}"
            )
    return ModelAliases(common, per_backend)


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "str | None": (str, type(None)),
    "float | None": (int, float, type(None)),
    "int | None": (int, type(None)),
}


def _dataclass_from(cls: Any, raw: Any, where: str, problems: list[str]) -> Any:
    """Build ``cls`` from a mapping, keeping defaults for wrong or missing values."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a table")
        return cls()
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        f = known.get(key)
        if f is None:
            problems.append(f"{where}.{key}: unknown setting ignored")
            continue
        allowed = _TYPES.get(str(f.type))
        if (
            allowed is not None
            and (isinstance(value, bool) or not isinstance(value, allowed))
            and not (value is None and type(None) in allowed)
        ):
            problems.append(f"{where}.{key}: expected {f.type}")
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            problems.append(f"{where}.{key}: must not be negative")
            continue
        kwargs[key] = float(value) if str(f.type) == "float" else value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        problems.append(f"{where}: {e}")
        return None
