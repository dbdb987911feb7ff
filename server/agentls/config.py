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

Until the workspace is trusted its ``agentls.toml`` may only *narrow* what agentls does: the keys in
``UNTRUSTED_WORKSPACE_KEYS`` are read (limits only when they lower the value the lower layers
give), everything else (``data_dir``, ``log_level``, raised limits, trust) is left out of the
merge and listed in ``Settings.ignored`` so the user sees why.

A client that is not the user's editor (a TCP peer without the server's token) may not define or
change backends, set ``data_dir`` nor declare trust (``load_settings(..., client_trusted=False)``).

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
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from agentls.workspace.reader import read_regular

BackendKind = Literal["openai", "anthropic", "command"]
Origin = Literal["default", "user", "workspace", "client"]
CwdMode = Literal["workspace", "neutral"]

CWD_MODES: tuple[str, ...] = ("workspace", "neutral")

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
    tools: bool = True
    """Whether the model may be offered tools (``false``: runs are single-shot, with a note)."""
    cwd: CwdMode = "workspace"
    """``command`` backends: ``"workspace"`` runs the program in the agent's workspace folder when
    that workspace is trusted (a neutral empty folder otherwise); ``"neutral"`` always uses a
    neutral empty folder."""
    max_memory_mb: int | None = None
    """``command`` children: address space (``RLIMIT_AS``) in MiB; None: ``limits``', 0: none."""
    max_cpu_seconds: int | None = None
    """``command`` children: CPU seconds (``RLIMIT_CPU``); None: ``limits``' value, 0: none."""
    max_open_files: int | None = None
    """``command`` children: open descriptors (``RLIMIT_NOFILE``); None: ``limits``' value."""
    max_processes: int | None = None
    """``command`` children: processes of the user (``RLIMIT_NPROC``); None: ``limits``' value."""


@dataclass(frozen=True)
class Limits:
    """Bounds on memory, disk, concurrency and time."""

    cache_max_bytes: int = 256 * 1024 * 1024
    max_file_bytes: int = 1024 * 1024
    max_concurrent_runs: int = 8
    max_queued_runs: int = 256
    history_max_entries: int = 10_000
    history_max_bytes: int = 64 * 1024 * 1024
    history_max_age_days: float | None = None
    """Runs older than this many days are dropped (at start and hourly); None or 0: kept."""
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
    max_fan_out: int = 200
    """The most files one recipe step's ``for_each`` may run over; more refuses the recipe."""
    max_prompt_bytes: int | None = None
    """The expanded prompt (body with its variables filled in, plus the task) must stay under
    this many bytes, or the request fails before the prompt is built. None sizes it from each
    run's token budget (``context.builder.prompt_bytes_limit``)."""

    max_memory_mb: int = 0
    """Default address-space limit of ``command`` children, in MiB; 0: no limit."""
    max_cpu_seconds: int = 0
    """Default CPU-time limit of ``command`` children, in seconds; 0: no limit."""
    max_open_files: int = 0
    """Default open-descriptor limit of ``command`` children; 0: the server's own limit."""
    max_processes: int = 0
    """Default ``RLIMIT_NPROC`` of ``command`` children (all the user's processes); 0: none."""


UNLIMITED_WHEN_ZERO: frozenset[str] = frozenset(
    {"max_memory_mb", "max_cpu_seconds", "max_open_files", "max_processes"}
)
"""The child limits, where 0 means "no limit": for them 0 is the highest value, not the lowest."""

_DERIVED_LIMIT_FLOORS: dict[str, int] = {"max_prompt_bytes": 2 * 1024 * 1024}
"""Limits whose default (None) is derived per run, with the least value the derivation gives
(``context.builder.MIN_PROMPT_BYTES``): an untrusted workspace may set them up to that only."""

_ZERO_IS_HIGHEST: frozenset[str] = UNLIMITED_WHEN_ZERO | {"run_timeout"}
"""Every limit whose 0 disables it (a ``run_timeout`` of 0 runs without a deadline)."""


@dataclass(frozen=True)
class IgnoredSetting:
    """A key of an untrusted workspace's ``agentls.toml`` that was not applied, and why."""

    file: Path
    key: str
    reason: str

    def __str__(self) -> str:
        """One line for logs, ``agentls.status`` and ``doctor``."""
        return f"{self.file}: {self.key} ignored: {self.reason}"


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
    ignored: tuple[IgnoredSetting, ...] = ()
    """Keys of an untrusted workspace's ``agentls.toml`` that were left out of the merge."""

    def backend(self, name: str | None) -> BackendConfig | None:
        """The backend called ``name``, or the default one when ``name`` is None."""
        key = name or self.default_backend
        return self.backends.get(key) if key else None


def with_child_limits(config: BackendConfig, limits: Limits) -> BackendConfig:
    """``config`` with every child limit it leaves unset (None) taken from ``limits``."""
    changes = {
        name: getattr(limits, name) for name in UNLIMITED_WHEN_ZERO if getattr(config, name) is None
    }
    return replace(config, **changes) if changes else config


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
    got = read_regular(path, max_bytes=MAX_CONFIG_FILE_BYTES, within=folders, follow_symlink=True)
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


UNTRUSTED_WORKSPACE_KEYS: frozenset[str] = frozenset({"default_backend", "backends", "limits"})
"""Top-level keys an untrusted workspace's ``agentls.toml`` may set. ``backends`` stay, marked
``origin="workspace"`` so they cannot run (and a user backend they change is tainted the same
way); ``limits`` only where they lower a value. Agent defaults, context globs and ignore
patterns belong here when they become settings: they can only narrow what a run reads."""

PEER_CLIENT_KEYS_DENIED: frozenset[str] = frozenset({"backends", "trusted_workspaces", "data_dir"})
"""What a client that is not trusted (a TCP peer without the token) may not set."""


def load_settings(
    folders: Sequence[Path] = (),
    init_options: Mapping[str, Any] | None = None,
    client_config: Mapping[str, Any] | None = None,
    *,
    user_file: Path | None = None,
    client_trusted: bool = True,
) -> Settings:
    """Merge every layer into one ``Settings``; problems are collected, never raised.

    ``client_trusted=False`` (a TCP peer that did not present the server's token) drops what the
    client says about trust, backends and ``data_dir``, reporting each as a problem.
    """
    problems: list[str] = []
    ignored: list[IgnoredSetting] = []
    layers: list[_Layer] = []
    ufile = user_file if user_file is not None else user_config_path()
    user = _read_toml(ufile, problems)
    layers.append(_Layer("user", str(ufile), user))
    init = dict(init_options or {})
    trusted_flag = init.pop("trusted", None)
    if trusted_flag is not None and not isinstance(trusted_flag, bool):
        problems.append("initializationOptions.trusted: expected a boolean")
        trusted_flag = None
    client = dict(client_config or {})
    if not client_trusted:
        if trusted_flag is not None:
            problems.append("initializationOptions.trusted ignored: client not authenticated")
            trusted_flag = None
        for label, data in (("initializationOptions", init), ("workspace/configuration", client)):
            for key in sorted(PEER_CLIENT_KEYS_DENIED & data.keys()):
                del data[key]
                problems.append(f"{label}.{key} ignored: the client is not authenticated")
    trusted = trusted_flag is True or _listed_as_trusted(user.get("trusted_workspaces"), folders)
    for folder in folders:
        wfile = folder / WORKSPACE_CONFIG_NAME
        data = _read_toml(wfile, problems, folder)
        if not trusted:
            data = _untrusted_workspace_layer(wfile, data, user, ignored)
        layers.append(_Layer("workspace", str(wfile), data))
    layers.append(_Layer("client", "initializationOptions", init))
    layers.append(_Layer("client", "workspace/configuration", client))

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

    settings = _build(merged, backend_origin, trusted, problems)
    if ignored:
        settings = replace(settings, ignored=tuple(ignored))
    return settings


def _untrusted_workspace_layer(
    file: Path,
    data: Mapping[str, Any],
    user: Mapping[str, Any],
    ignored: list[IgnoredSetting],
) -> dict[str, Any]:
    """The part of an untrusted workspace's ``agentls.toml`` that may apply; the rest is noted.

    Limits are compared with what the defaults and the user file give: a repository may lower a
    bound, never raise one (0 is "no limit" for the child limits, so it counts as the highest).
    """
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key not in UNTRUSTED_WORKSPACE_KEYS:
            reason = (
                "only the user file may list trusted folders"
                if key == "trusted_workspaces"
                else "the workspace is not trusted"
            )
            ignored.append(IgnoredSetting(file, key, reason))
            continue
        if key == "backends" and isinstance(value, Mapping):
            for name in value:
                ignored.append(
                    IgnoredSetting(
                        file,
                        f"backends.{name}",
                        "defined or changed by a workspace that is not trusted; it will not run",
                    )
                )
        if key == "limits" and isinstance(value, Mapping):
            value = _lowered_limits(file, value, user.get("limits"), ignored)
        kept[key] = value
    return kept


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lowered_limits(
    file: Path,
    value: Mapping[str, Any],
    user_limits: Any,
    ignored: list[IgnoredSetting],
) -> dict[str, Any]:
    base = Limits()
    user = user_limits if isinstance(user_limits, Mapping) else {}
    kept: dict[str, Any] = {}
    for name, wanted in value.items():
        current = user.get(name)
        if not _number(current):  # unset or wrong in the user file: the default applies
            current = getattr(base, name, None)
        if current is None:  # a bound derived per run: compare with the least it can be
            current = _DERIVED_LIMIT_FLOORS.get(name)
        if not _number(wanted) or not _number(current):
            kept[name] = wanted  # unknown or wrong: the validation reports it as usual
            continue
        if name in _ZERO_IS_HIGHEST:
            lower = wanted > 0 and (current == 0 or wanted <= current)
        else:
            lower = wanted <= current
        if lower:
            kept[name] = wanted
        else:
            ignored.append(
                IgnoredSetting(
                    file,
                    f"limits.{name}",
                    f"a workspace that is not trusted may only lower it (now {current})",
                )
            )
    return kept


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
    if "cwd" in values and values["cwd"] not in CWD_MODES:
        problems.append(f"{where}.cwd: expected one of {', '.join(CWD_MODES)}")
        del values["cwd"]
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
