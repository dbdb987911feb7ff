"""Fixtures shared by the VS Code tests: the extension's npm packages and its packaged ``.vsix``.

Both install or build once per test session. When npm cannot install the packages (no npm, no
registry), the tests that need them are skipped with the reason spelled out, never silently; set
``AGENTLS_REQUIRE_VSCODE_E2E=1`` (CI does) to turn those skips into failures.
"""

from __future__ import annotations

import os
import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest
from vscode_toolchain import EXTENSION_DIR, ToolchainUnavailable, ensure_extension_packages, npm


def skip_loudly(reason: str) -> None:
    """Skip with a reason nobody can miss, or fail when the environment demands the test run."""
    message = f"VS CODE TEST NOT RUN: {reason}"
    if os.environ.get("AGENTLS_REQUIRE_VSCODE_E2E"):
        pytest.fail(message)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


def npm_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``npm <args>`` in the extension folder and return what it printed (no check)."""
    return subprocess.run(
        [npm(), *args],
        cwd=EXTENSION_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
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
