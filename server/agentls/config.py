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
    tools: bool = True
    """Whether the model may be offered tools (``false``: runs are single-shot, with a note)."""


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
    max_turns: int = 20
    """Model turns a tool-using run may take; default for agents that do not set ``max_turns``."""
    max_tool_calls: int = 64
    """Tool calls one run may make; later calls are answered with a refusal."""
    max_tool_result_bytes: int = 32 * 1024
    """Bytes of one tool result the model receives (the rest is cut, with a note)."""


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one server (or one ``agentls run``)."""

    default_backend: str | None = None
    backends: Mapping[str, BackendConfig] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
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


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
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
        layers.append(_Layer("workspace", str(wfile), _read_toml(wfile, problems)))
    init = dict(init_options or {})
    trusted_flag = init.pop("trusted", None)
    if trusted_flag is not None and not isinstance(trusted_flag, bool):
        problems.append("initializationOptions.trusted: expected a boolean")
        trusted_flag = None
    layers.append(_Layer("client", "initializationOptions", init))
    layers.append(_Layer("client", "workspace/configuration", dict(client_config or {})))

    merged: dict[str, Any] = {}
    backend_origin: dict[str, Origin] = {}
    for layer in layers:
        data = dict(layer.data)
        if layer.origin != "user":
            data.pop("trusted_workspaces", None)  # only the user may say which folders to trust
        for name in (data.get("backends") or {}) if isinstance(data.get("backends"), dict) else {}:
            prev = backend_origin.get(name)
            if layer.origin == "workspace" or prev != "workspace":
                backend_origin[name] = layer.origin
        _deep_merge(merged, data)

    trusted = trusted_flag is True or _listed_as_trusted(user.get("trusted_workspaces"), folders)
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


_TOP_KEYS = {"default_backend", "backends", "limits", "data_dir", "log_level", "trusted_workspaces"}


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
    for key in ("argv", "env"):
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
    if not isinstance(values.get("tools", True), bool):
        problems.append(f"{where}.tools: expected a boolean")
        values.pop("tools")
    values["name"] = name
    values["origin"] = origin
    backend: BackendConfig | None = _dataclass_from(BackendConfig, values, where, problems)
    return backend


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
