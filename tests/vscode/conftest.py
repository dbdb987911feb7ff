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


INSTALL_TIMEOUT_SECONDS = 1500
"""On a fresh machine the first VS Code test installs npm packages, Node 24, code-server (native
builds) and Chromium inside its fixtures; the suite-wide 120 s per-test timeout would cut that
short, so these tests get a budget that covers a cold install."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT_SECONDS))
