"""The codebase's own rules, checked on every test run: lint, types, and layering."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "agentls"
LSP_LAYER = PACKAGE / "lsp"


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the test extra: pip install -e '.[test]'")
    return [found]


def test_services_never_import_pygls() -> None:
    """Only agentls.lsp may import pygls or lsprotocol: services stay testable without LSP."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if LSP_LAYER in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("pygls", "lsprotocol"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_no_print_in_server_code() -> None:
    """stdout is the protocol stream; only the terminal-facing modules may write to it."""
    allowed = {"cli.py", "__main__.py", "terminal.py", "bench.py", "doctor.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [*_tool("ruff"), "check", "server", "tests"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run(
        [*_tool("mypy"), "--no-error-summary"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_does_not_import_pygls() -> None:
    """`agentls --help` stays instant: the CLI imports its subcommands lazily."""
    code = (
        "import sys\n"
        "from agentls.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'pygls' not in sys.modules, 'pygls imported'\n"
        "assert 'lsprotocol' not in sys.modules, 'lsprotocol imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "run" in result.stdout


STARTUP_MODULES = {
    "agentls",
    "agentls.cli",
    "agentls.errors",
    "agentls.execution",
    "agentls.execution.records",
    "agentls.lsp",
    "agentls.lsp.actions",
    "agentls.lsp.agent_files",
    "agentls.lsp.commands",
    "agentls.lsp.documents",
    "agentls.lsp.lifecycle",
    "agentls.lsp.progress",
    "agentls.lsp.protocol",
    "agentls.lsp.server",
    "agentls.lsp.transport",
    "agentls.provenance",
    "agentls.redaction",
    "agentls.requests",
    "agentls.serve",
}
"""The agentls modules loaded when ``initialize`` is answered: the LSP layer and what it needs to
check messages. Everything else waits for ``initialized`` (see ``agentls.lsp.server``)."""

NOT_AT_STARTUP = (
    "yaml",
    "pathspec",
    "httpx",
    "psutil",
    "sqlite3",
    "xxhash",
    "cachetools",
    "watchfiles",
    "tomllib",
)
"""Libraries ``initialize`` does not need (YAML alone costs ~75 ms to import)."""


def test_initialize_is_answered_before_the_service_is_imported() -> None:
    """The modules loaded at the moment the ``initialize`` answer is written, in a fresh process.

    The writer takes a snapshot of ``sys.modules`` as it writes the answer, so an import made
    just after the answer (the client-process watch) does not count, and one made before does.
    """
    code = """
import asyncio, os, sys
import orjson
from agentls.cli import main
import agentls.serve, agentls.lsp.transport
from agentls.lsp.server import create_server

seen = []
class Writer:
    def write(self, data):
        seen.append((orjson.loads(data), sorted(sys.modules)))
    def close(self):
        pass

async def session():
    ls = create_server()
    ls.protocol.set_writer(Writer(), include_headers=False)
    ls.lsp.receive({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"processId": os.getpid(), "rootUri": None, "capabilities": {}}})
    for _ in range(500):
        if seen:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    answer, modules = seen[0]
    watching = ls._parent_watch is not None
    await ls.aclose()
    print(orjson.dumps({"answer": answer, "modules": modules, "watching": watching}).decode())

asyncio.run(session())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert "capabilities" in report["answer"]["result"], report["answer"]
    assert report["watching"], "the client-process watch never started"
    modules = set(report["modules"])
    ours = {m for m in modules if m == "agentls" or m.startswith("agentls.")}
    assert ours <= STARTUP_MODULES, sorted(ours - STARTUP_MODULES)
    assert [m for m in NOT_AT_STARTUP if m in modules] == []
