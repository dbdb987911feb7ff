"""Helpers for the secret tests: a real ``agentls serve`` over stdio on a hostile workspace.

The workspace plays the attacker: it ships secrets inside files, in its agent definitions, in
files named like credentials, and an ``.agentlsignore`` that tries to re-include everything. The
tests ask the real server (through pytest-lsp's client) what it would send, or run an agent whose
"model" repeats secrets, and look for the canaries in the answers and in the history file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

# Built from pieces so this file does not look like it holds live credentials.
CANARIES: dict[str, str] = {
    "openai_key": "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7CDe0FGh3IJkL6MNo9PQr2STu5",
    "openai_legacy": "sk-" + "Xq7Lp2Vb9Rt4Mn8Ks3Dh6Fj1Gw5Ha0Ze2Yc4Ub7Io9Pe3Wr6Tl",
    "anthropic_key": "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7Zx6Yw5Vu4Ts3Rq2P",
    "google_api_key": "AIza" + "SyD4v7Qx2Lm9Pk3Rt8Wn5Hb1Jc6Fg0Ze4Ua",
    "huggingface_token": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "bearer_token": "Zm9vYmFyYmF6" + "cXV4MTIzNDU2Nzg5MGFiY2Rl",
    "pgp": "lQOYBGJhc2UBCADGx0b3p0" + "ZXN0a2V5ZmFrZWtleWZha2Vr",
    "putty": "AAAAIFNlY3JldFNl" + "Y3JldFNlY3JldFNlY3Jl",
    "postgres_password": "s3cr3t-" + "Pa55w0rd",
    "redis_password": "hunter2" + "hunter2",
}
"""The secret values; each must never appear in a prompt, a run result or history."""

LEAKY_FILE = "\n".join(
    [
        "# settings the agent may read",
        f"OPENAI = '{CANARIES['openai_key']}'",
        f"client = OpenAI(api_key={CANARIES['openai_legacy']!r})",
        f"ANTHROPIC = '{CANARIES['anthropic_key']}'",
        f"MAPS = '{CANARIES['google_api_key']}'",
        f"login({CANARIES['huggingface_token']})",
        f"headers = {{'Authorization': 'Bearer {CANARIES['bearer_token']}'}}",
        f"DB = 'postgres://app:{CANARIES['postgres_password']}@db.internal:5432/app'",
        f"CACHE = 'redis://:{CANARIES['redis_password']}@cache:6379/0'",
        "PGP = '''",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "",
        CANARIES["pgp"],
        "-----END PGP PRIVATE KEY BLOCK-----",
        "'''",
        "PUTTY = '''",
        "PuTTY-User-Key-File-3: ssh-ed25519",
        "Encryption: none",
        "Private-Lines: 1",
        CANARIES["putty"],
        "Private-MAC: 0123456789abcdef0123456789abcdef",
        "'''",
        "DONE = True",
        "",
    ]
)
"""A source file that holds one of each secret kind of finding 7."""

LEAKY_KINDS = [
    (2, "openai_key"),
    (3, "openai_key"),
    (4, "anthropic_key"),
    (5, "google_api_key"),
    (6, "huggingface_token"),
    (7, "bearer_token"),
    (8, "url_password"),
    (9, "url_password"),
    (11, "private_key"),
    (17, "putty_key"),
]
"""``(line, kind)`` the manifest must list for ``LEAKY_FILE``."""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def agent_file(root: Path, name: str, body: str, *, context: str = "[]", backend: str = "") -> Path:
    """An agent definition under ``.agents/``."""
    front = f"---\nname: {name}\ncontext: {context}\n"
    if backend:
        front += f"backend: {backend}\n"
    return write(root, f".agents/{name}.md", front + "---\n" + textwrap.dedent(body))


def command_backend(home: Path, name: str, script: str) -> str:
    """User configuration (TOML) whose default backend runs ``script`` with this Python.

    The program and the configuration are the user's (outside the workspace), so they apply
    whether or not the workspace is trusted.
    """
    prog = write(home, f"tools/{name}.py", textwrap.dedent(script))
    q = sys.executable.replace("\\", "\\\\")
    p = str(prog).replace("\\", "\\\\")
    return (
        f'default_backend = "{name}"\n[backends.{name}]\nkind = "command"\nargv = ["{q}", "{p}"]\n'
    )


QUIET_MODEL = "import sys\nsys.stdin.read()\nprint('ok')\n"
"""A command "model" that answers ``ok``: enough for agents that are only previewed."""


@contextlib.asynccontextmanager
async def serve(
    root: Path, home: Path, *, model: str = QUIET_MODEL, trusted: bool = True
) -> AsyncIterator[LanguageClient]:
    """A real ``agentls serve`` on ``root``, with its user config and data under ``home``.

    The user's configuration defines one command backend that runs ``model`` (Python source).
    """
    write(home, "config/agentls/config.toml", command_backend(home, "model", model))
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(home / "config"),
        "AGENTLS_DATA_DIR": str(home / "data"),
    }
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "agentls", "serve"], server_env=env
    )
    client = await config.start()
    await client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options={"trusted": trusted},
        )
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 10)
        await client.stop()


async def command(client: LanguageClient, name: str, args: dict[str, Any]) -> Any:
    """One ``workspace/executeCommand``, as an editor sends it."""
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=[args])
    )


def files_under(folder: Path) -> bytes:
    """Every byte stored under a folder (the history database, its WAL...)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())
