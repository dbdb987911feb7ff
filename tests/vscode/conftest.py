"""Fixtures shared by the VS Code tests: the extension's npm packages and its packaged ``.vsix``.

Both install or build once per test session. When npm cannot install the packages (no npm, no
registry), the tests that need them are skipped with the reason spelled out, never silently; set
``AGENTLS_REQUIRE_VSCODE_E2E=1`` (CI does) to turn those skips into failures.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.vscode.vscode_toolchain import (
    ToolchainUnavailable,
    ensure_extension_packages,
    npm_run,
    skip_loudly,
)


@pytest.fixture(scope="session")
def extension_packages() -> Path:
    """The extension's ``node_modules``, installed from the lock file (``npm ci``) when stale."""
    try:
        return ensure_extension_packages()
    except ToolchainUnavailable as e:
        skip_loudly(str(e))
        raise  # unreachable: skip_loudly raises


@pytest.fixture(scope="session")
def vsix(extension_packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension packaged by ``vsce package`` (production bundle), built once per session."""
    out = tmp_path_factory.mktemp("vsix") / "agentls.vsix"
    proc = npm_run("run", "package", "--", "--out", str(out))
    assert proc.returncode == 0, (
        f"vsce package failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert zipfile.is_zipfile(out)
    return out
