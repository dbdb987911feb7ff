"""End-to-end helpers: the test workspace, a running session, polling."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")
CLIENTS = ["visual-studio-code", "neovim"]


@dataclass
class Recorded:
    """Custom notifications the server sent, in arrival order."""

    started: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def make_workspace(root: Path) -> Path:
    """A small project with agents, code, an ignored file and a secret file."""
    q = sys.executable.replace("\\", "\\\\")
    agent = str(FAKE_AGENT).replace("\\", "\\\\")
    write(
        root,
        "agentls.toml",
        f"""
        default_backend = "echo"
        [backends.echo]
        kind = "command"
        argv = ["{q}", "{agent}", "echo"]
        [backends.failing]
        kind = "command"
        argv = ["{q}", "{agent}", "fail"]
        [backends.missing]
        kind = "command"
        argv = ["agentls-no-such-program-xyz"]
        [backends.slow]
        kind = "command"
        argv = ["{q}", "{agent}", "slow", "{str(root / "slow.pids").replace(chr(92), chr(92) * 2)}"]
    """,
    )
    write(
        root,
        ".agents/slow.md",
        """
        ---
        backend: slow
        timeout: 120
        ---
        Take your time.
    """,
    )
    write(
        root,
        ".agents/reviewer.md",
        """
        ---
        name: reviewer
        description: Reviews Python code
        context: ["src/**/*.py", "build/**", "*.env", ".env"]
        ---
        You review code in {{workspace}}. Task: {{task}}
    """,
    )
    write(
        root,
        ".agents/failing.md",
        """
        ---
        description: Always fails
        backend: failing
        ---
        Fail.
    """,
    )
    write(
        root,
        ".agents/missing.md",
        """
        ---
        backend: missing
        ---
        Its program does not exist.
    """,
    )
    write(root, ".gitignore", "build/\n")
    write(root, "build/generated.py", "GENERATED = True\n")
    write(root, ".env", "API_TOKEN=canary-env-secret-0001\n")
    write(root, "src/app.py", "def main():\n    return 'hello from disk'\n")
    write(root, "src/util.py", "def helper():\n    return 42\n")
    return root


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


class Session:
    """One running server with its client, workspace and recorded notifications."""

    def __init__(self, client: LanguageClient, root: Path, recorded: Recorded) -> None:
        self.client = client
        self.root = root
        self.recorded = recorded

    async def command(self, name: str, *args: Any) -> Any:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args))
        )

    def uri(self, rel: str) -> str:
        return (self.root / rel).as_uri()


SessionFactory = Callable[..., contextlib.AbstractAsyncContextManager[Session]]
