"""The VS Code extension's own checks, run from pytest so one command tests everything.

Settings in package.json against the server's configuration dataclasses; the TypeScript type
check, lint and unit tests; and ``vsce package`` producing a ``.vsix`` that holds the bundle and
nothing it should not.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from agentls.config import BackendConfig, Limits, Settings
from tests.vscode.vscode_toolchain import EXTENSION_DIR, npm_run

PACKAGE = json.loads((EXTENSION_DIR / "package.json").read_text(encoding="utf-8"))
PROPERTIES: dict[str, Any] = PACKAGE["contributes"]["configuration"]["properties"]

CLIENT_ONLY_SETTINGS = {"trusted", "problems", "ignored"}
"""Settings the editor does not set: trust comes from Workspace Trust; problems and ignored
workspace keys are output."""
INTERNAL_BACKEND_FIELDS = {"name", "origin"}
"""BackendConfig fields filled by the server (the table key and the layer it came from)."""


def test_settings_mirror_the_server_configuration() -> None:
    """Every server setting has exactly one VS Code setting, and nothing else is sent."""
    expected = set()
    for f in fields(Settings):
        if f.name in CLIENT_ONLY_SETTINGS:
            continue
        if f.name == "limits":
            expected |= {f"agentls.limits.{lf.name}" for lf in fields(Limits)}
        else:
            expected.add(f"agentls.{f.name}")
    server_side = {k for k in PROPERTIES if not k.startswith("agentls.server.")}
    assert server_side == expected
    assert "agentls.server.command" in PROPERTIES


def test_backend_schema_mirrors_backend_config() -> None:
    schema = PROPERTIES["agentls.backends"]["additionalProperties"]
    assert (
        set(schema["properties"])
        == {f.name for f in fields(BackendConfig)} - INTERNAL_BACKEND_FIELDS
    )
    kind_enum = schema["properties"]["kind"]["enum"]
    assert kind_enum == ["openai", "anthropic", "command"]


def test_server_settings_default_to_unset_and_document_the_server_default() -> None:
    """A VS Code default would override agentls.toml, so every server setting defaults to empty."""
    for key, prop in PROPERTIES.items():
        if key.startswith("agentls.server."):
            continue
        assert prop["default"] in (None, {}), key
    for lf in fields(Limits):
        prop = PROPERTIES[f"agentls.limits.{lf.name}"]
        assert f"`{lf.default}`" in prop["markdownDescription"], lf.name
        integer = lf.type in ("int", "int | None")
        assert ("integer" if integer else "number") in prop["type"], lf.name


def test_settings_that_run_programs_are_restricted_in_untrusted_workspaces() -> None:
    for key in ("agentls.server.command", "agentls.backends", "agentls.data_dir"):
        assert PROPERTIES[key].get("restricted") is True, key
    assert PACKAGE["capabilities"]["untrustedWorkspaces"]["supported"] == "limited"


def test_manifest_targets_older_editors_and_lists_the_commands() -> None:
    engine = PACKAGE["engines"]["vscode"]
    major, minor = map(int, re.match(r"\^?(\d+)\.(\d+)", engine).groups())  # type: ignore[union-attr]
    assert (major, minor) <= (1, 90)
    commands = {c["command"] for c in PACKAGE["contributes"]["commands"]}
    assert {
        "agentls.runAgent",
        "agentls.runAgentOnSelection",
        "agentls.previewContext",
        "agentls.cancelRun",
        "agentls.showHistory",
        "agentls.showMetrics",
        "agentls.showMemorySnapshot",
        "agentls.stopMemoryProfiling",
        "agentls.restartServer",
    } <= commands
    # Server command ids are registered by the language client; a clash would make it throw.
    assert not commands & {
        "agentls.run",
        "agentls.agents.list",
        "agentls.context.preview",
        "agentls.runs.cancel",
        "agentls.status",
        "agentls.history.list",
        "agentls.history.get",
        "agentls.metrics",
        "agentls.cache.clear",
        "agentls.memory.profile",
    }
    views = {v["id"] for v in PACKAGE["contributes"]["views"]["agentls"]}
    assert views == {"agentls.agents", "agentls.history"}


def test_typecheck(extension_packages: Path) -> None:
    proc = npm_run("run", "typecheck")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint(extension_packages: Path) -> None:
    proc = npm_run("run", "lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_tests(extension_packages: Path) -> None:
    proc = npm_run("test")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = int(re.search(r"^# pass (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"^# fail (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert failed == 0
    assert passed >= 30, out[-2000:]


def test_vsce_package(vsix: Path) -> None:
    """The .vsix holds the minified bundle, the manifest, README, license and images, no sources."""
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("extension/package.json"))
        bundle = z.read("extension/dist/extension.js").decode()
    assert {
        "extension/dist/extension.js",
        "extension/package.json",
        "extension/media/icon.png",
    } <= names
    assert not [
        n
        for n in names
        if n.startswith(("extension/src/", "extension/node_modules/", "extension/test/"))
    ]
    assert not [n for n in names if n.endswith(".map")]
    assert manifest["version"] == PACKAGE["version"]
    # The language client is bundled (the .vsix ships without node_modules) and minified.
    assert "workspace/executeCommand" in bundle
    assert len(bundle) / (bundle.count("\n") + 1) > 2000  # minified: long lines
    assert "sourceMappingURL" not in bundle
