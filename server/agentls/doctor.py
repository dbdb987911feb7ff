"""``agentls doctor``: is everything in place to run agents here? A table, and exit 1 on a problem.

Checks, in order: the configuration layers (every problem found while merging them), each
backend (command: the program exists and may run here; HTTP: the key's variable is set, the
endpoint answers, and the model is listed where the API lists models), the workspace index (a real
scan), symlinks in definition locations that were skipped because they point out of the folder, and
the agents (every definition valid, and the model each one will really run on served by its backend:
the ``models`` list the API gives, else the one the configuration gives). Keys are only ever named
by their variable.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from agentls.config import BackendConfig, Settings, load_settings, with_child_limits

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    area: str
    name: str
    status: Status
    detail: str


def run_doctor(*, workspace: str, as_json: bool, trust: bool, timeout: float) -> int:
    """Entry point of ``agentls doctor``: print the report, return 1 if any check failed."""
    folder = Path(os.path.realpath(workspace))
    if not folder.is_dir():
        sys.stderr.write(f"agentls: {workspace} is not a directory\n")
        return 2
    checks = asyncio.run(diagnose(folder, trust=trust, wait_seconds=timeout))
    if as_json:
        import orjson

        sys.stdout.write(
            orjson.dumps([asdict(c) for c in checks], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        sys.stdout.write(render(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


async def diagnose(folder: Path, *, trust: bool, wait_seconds: float) -> list[Check]:
    """Every check for one workspace folder."""
    settings = load_settings([folder], {"trusted": True} if trust else None)
    checks = [Check("config", "layers", "fail", problem) for problem in settings.problems] or [
        Check("config", "layers", "ok", "no problems")
    ]
    checks.extend(Check("config", "untrusted", "warn", str(item)) for item in settings.ignored)
    checks.append(
        Check(
            "config",
            "trust",
            "ok" if settings.trusted else "warn",
            "workspace trusted"
            if settings.trusted
            else "workspace not trusted: its agentls.toml backends will not run",
        )
    )
    if not settings.backends:
        checks.append(Check("backend", "-", "warn", "no backend configured"))
    listed: dict[str, set[str]] = {}
    results = await asyncio.gather(
        *(check_backend(b, settings, wait_seconds, listed) for b in settings.backends.values())
    )
    checks.extend(results)
    checks.extend(await _workspace_checks(folder, settings, listed))
    return checks


async def check_backend(
    config: BackendConfig,
    settings: Settings,
    wait_seconds: float,
    listed: dict[str, set[str]] | None = None,
) -> Check:
    """One backend: can a run reach it? The models its API lists go into ``listed``."""
    name = config.name + (" (default)" if config.name == settings.default_backend else "")
    if config.origin == "workspace" and not settings.trusted:
        return Check(
            "backend",
            name,
            "warn",
            f"{config.kind}: defined by the workspace, which is not trusted",
        )
    if config.kind == "command":
        return _check_command(with_child_limits(config, settings.limits), name, settings.trusted)
    return await _check_http(config, name, wait_seconds, listed if listed is not None else {})


def _working_directory(config: BackendConfig, trusted: bool) -> str:
    """Where this backend's children run, in words (the rule of ``AgentService._child_cwd``)."""
    if config.cwd == "neutral":
        return 'runs in a neutral empty folder (cwd = "neutral")'
    if trusted:
        return "runs in the workspace folder"
    return "runs in a neutral empty folder (the workspace is not trusted)"


def _check_command(config: BackendConfig, name: str, trusted: bool) -> Check:
    program = config.argv[0]
    found = shutil.which(program)
    if found is None:
        return Check("backend", name, "fail", f"command: {program!r} not found on PATH")
    missing = [v for v in config.env if v not in os.environ]
    detail = f"command: {found}; {_working_directory(config, trusted)}"
    limits = [
        f"{setting} = {getattr(config, setting)}"
        for setting in ("max_memory_mb", "max_cpu_seconds", "max_open_files", "max_processes")
        if getattr(config, setting)
    ]
    if limits:
        detail += f"; limits: {', '.join(limits)}"
    if missing:
        return Check("backend", name, "warn", f"{detail}; env not set: {', '.join(missing)}")
    return Check("backend", name, "ok", detail)


async def _check_http(
    config: BackendConfig, name: str, wait_seconds: float, listed: dict[str, set[str]]
) -> Check:
    import httpx

    from agentls.backends import anthropic, openai
    from agentls.backends.base import BackendError
    from agentls.backends.http import endpoint, read_api_key
    from agentls.redaction import scrub

    try:
        key = read_api_key(config)
        if config.kind == "openai":
            url = endpoint(config, openai.DEFAULT_BASE_URL, "/models")
            headers = {"authorization": f"Bearer {key}"} if key else {}
        else:
            url = endpoint(config, anthropic.DEFAULT_BASE_URL, "/v1/models")
            headers = {"anthropic-version": config.anthropic_version}
            if key:
                headers["x-api-key"] = key
    except BackendError as e:
        return Check("backend", name, "fail", f"{config.kind}: {e.message}")
    headers.update(config.headers)
    host = httpx.URL(url).host
    try:
        async with httpx.AsyncClient(timeout=wait_seconds) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as e:
        detail = scrub(str(e) or type(e).__name__, [key] if key else [])
        return Check("backend", name, "fail", f"{config.kind}: {host} unreachable: {detail}")
    if response.status_code in (401, 403):
        variable = config.api_key_env or "no api_key_env set"
        return Check(
            "backend",
            name,
            "fail",
            f"{config.kind}: {host} refused the key (HTTP {response.status_code}; {variable})",
        )
    if response.status_code >= 400:
        return Check(
            "backend", name, "fail", f"{config.kind}: {host} answered HTTP {response.status_code}"
        )
    models = _listed_models(response)
    if models is not None:
        listed[config.name] = models
    if config.model and models is not None and config.model not in models:
        shown = ", ".join(sorted(models)[:5]) or "none"
        return Check(
            "backend",
            name,
            "fail",
            f"{config.kind}: {host} does not list model {config.model!r} (it lists: {shown})",
        )
    model = f", model {config.model}" if config.model else ", no model set"
    return Check("backend", name, "ok", f"{config.kind}: {host} reachable{model}")


def _listed_models(response: Any) -> set[str] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return {i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)}


async def _workspace_checks(
    folder: Path, settings: Settings, listed: dict[str, set[str]]
) -> list[Check]:
    from agentls.service import AgentService

    service = AgentService(settings, [folder], watch=False)
    await service.start()
    try:
        await service.index.wait_ready(timeout=60)
        stats = service.index.stats()
        checks = [
            Check(
                "workspace",
                str(folder),
                "ok" if stats["state"] == "ready" else "warn",
                f"{stats['files']} files, {stats['bytes']} bytes usable; "
                f"{stats['excluded']} excluded",
            )
        ]
        for link_folder, link in service.registry.skipped_links():
            rel = link.path.relative_to(link_folder).as_posix()
            checks.append(Check("agents", rel, "warn", link.message(rel)))
        agents = service.list_agents()["agents"]
        if not agents:
            checks.append(Check("agents", "-", "warn", "no agent definitions found"))
        for agent in agents:
            if agent["valid"]:
                checks.append(_agent_model_check(agent, settings, listed))
            else:
                first = agent["problems"][0] if agent["problems"] else "invalid"
                checks.append(Check("agents", agent["name"], "fail", f"{agent['source']}: {first}"))
        return checks
    finally:
        await service.shutdown()


def _agent_model_check(
    agent: dict[str, Any], settings: Settings, listed: dict[str, set[str]]
) -> Check:
    """A valid agent: fails when the model it will run on is not one its backend serves."""
    name, source = agent["name"], agent["source"]
    config = settings.backend(agent["backend"])
    model = agent["model"]
    if config is None:
        return Check("agents", name, "ok", source)
    served = listed.get(config.name) or set(config.models)
    if model and served and model not in served:
        shown = ", ".join(sorted(served)[:5])
        return Check(
            "agents",
            name,
            "fail",
            f"{source}: model {model!r} is not served by backend {config.name!r} (it lists: "
            f"{shown}); map the agent's model in [models] of your agentls configuration",
        )
    if not model:
        return Check("agents", name, "ok", f"{source}; backend {config.name}")
    requested = agent.get("model_requested")
    how = {
        "agent": "as written",
        "alias": f"mapped from {requested!r} by [models]",
        "backend": "the backend's own" + (f", instead of {requested!r}" if requested else ""),
    }.get(agent.get("model_source") or "", "")
    return Check("agents", name, "ok", f"{source}; model {model} ({how})")


def render(checks: list[Check]) -> str:
    """A plain-text table for a terminal."""
    rows = [("AREA", "CHECK", "STATUS", "DETAIL")] + [
        (c.area, c.name, c.status.upper(), c.detail) for c in checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    failed = sum(c.status == "fail" for c in checks)
    lines.append("")
    lines.append(f"{failed} problem(s)" if failed else "all checks passed")
    return "\n".join(lines) + "\n"
