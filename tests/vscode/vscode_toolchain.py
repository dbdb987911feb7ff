"""Installs what the VS Code tests need: the extension's npm packages, and a real VS Code.

The real VS Code is code-server (VS Code served to a browser) opened in Debian's headless Chromium.
Nothing is downloaded except through the npm registry and apt, the only registries these machines
reach: code-server needs Node 24, which comes from the npm package ``node-linux-<arch>`` (a plain
binary with the headers native builds need offline); code-server itself and its native modules
build against that Node. Everything lands in a cache folder outside the repository (reused when
complete, ``AGENTLS_VSCODE_E2E_CACHE`` or ``~/.cache/agentls-vscode-e2e``), guarded by a file lock
so two test runs never install at once.

Every step has a timeout and raises :class:`ToolchainUnavailable` with the reason and the log tail
when it fails, so a test can skip loudly instead of hanging or passing quietly.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

NODE24_VERSION = "24.22.3"
"""The Node that code-server 4.139 requires (its ``engines.node`` is 24)."""
CODE_SERVER_VERSION = "4.139.1"
"""code-server 4.139.1 ships VS Code 1.139.1."""
APT_PACKAGES = ("chromium", "libkrb5-dev")
"""Chromium opens the workbench; libkrb5-dev has the headers code-server's kerberos module needs."""

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "vscode-extension"


class ToolchainUnavailable(RuntimeError):
    """Something the real-VS-Code test needs could not be installed here; the message says what."""


@dataclass(frozen=True)
class Toolchain:
    """Paths of an installed real VS Code and the browser that shows it."""

    node24: Path
    code_server: Path
    chromium: Path


def cache_dir() -> Path:
    """Where the toolchain lives between runs (outside the repository, never committed)."""
    explicit = os.environ.get("AGENTLS_VSCODE_E2E_CACHE")
    if explicit:
        return Path(explicit)
    return Path.home() / ".cache" / "agentls-vscode-e2e"


def run_step(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    what: str,
) -> str:
    """Run one step; its output is returned, a failure or timeout raises with the log tail."""
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ToolchainUnavailable(
            f"{what}: no answer after {timeout:.0f} s ({' '.join(argv)})"
        ) from e
    except OSError as e:
        raise ToolchainUnavailable(f"{what}: cannot run {argv[0]}: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise ToolchainUnavailable(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def npm() -> str:
    """The npm client on PATH; without it nothing in these tests can run."""
    found = shutil.which("npm")
    if found is None:
        raise ToolchainUnavailable("npm is not on PATH (install Node.js 20 or newer)")
    return found


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


def ensure_extension_packages() -> Path:
    """``npm ci`` the extension's locked dependencies unless ``node_modules`` matches the lock."""
    lock = EXTENSION_DIR / "package-lock.json"
    stamp = EXTENSION_DIR / "node_modules" / ".agentls-lock-copy.json"
    if stamp.is_file() and stamp.read_bytes() == lock.read_bytes():
        return EXTENSION_DIR / "node_modules"
    with _locked(cache_dir()):
        if not (stamp.is_file() and stamp.read_bytes() == lock.read_bytes()):
            run_step(
                # No install scripts: the packages work without them (esbuild's platform binary
                # comes as a package), and a script is code that could reach the network.
                [npm(), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=EXTENSION_DIR,
                timeout=600,
                what="npm ci in vscode-extension",
            )
            stamp.write_bytes(lock.read_bytes())
    return EXTENSION_DIR / "node_modules"


def _ensure_apt_packages() -> Path:
    missing = [p for p in APT_PACKAGES if not _dpkg_installed(p)]
    if missing:
        if os.geteuid() != 0:
            raise ToolchainUnavailable(
                f"missing Debian packages {', '.join(missing)} and not root to install them "
                f"(run: sudo apt-get install -y {' '.join(missing)})"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run_step(
            ["apt-get", "update", "-qq"], cwd=Path("/"), timeout=300, env=env, what="apt-get update"
        )
        run_step(
            ["apt-get", "install", "-y", "-qq", *missing],
            cwd=Path("/"),
            timeout=600,
            env=env,
            what=f"apt-get install {' '.join(missing)}",
        )
    chromium = shutil.which("chromium")
    if chromium is None:
        raise ToolchainUnavailable("chromium is installed but not on PATH")
    return Path(chromium)


def _dpkg_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def _node_package() -> str:
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if arch is None or platform.system() != "Linux":
        raise ToolchainUnavailable(
            f"no Node 24 package for {platform.system()} {platform.machine()} in the npm registry"
        )
    return f"node-linux-{arch}"


def _ensure_node24(root: Path) -> Path:
    folder = root / "node24"
    package = _node_package()
    node = folder / "node_modules" / package / "bin" / "node"
    if node.is_file() and (folder / ".complete").is_file():
        return node
    folder.mkdir(parents=True, exist_ok=True)
    run_step(
        [
            npm(),
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(folder),
            f"{package}@{NODE24_VERSION}",
        ],
        cwd=folder,
        timeout=600,
        what=f"npm install {package}@{NODE24_VERSION}",
    )
    if not node.is_file():
        raise ToolchainUnavailable(f"{package} installed but {node} is missing")
    (folder / ".complete").write_text(NODE24_VERSION)
    return node


def _ensure_code_server(root: Path, node24: Path) -> Path:
    folder = root / "code-server"
    binary = folder / "node_modules" / ".bin" / "code-server"
    complete = folder / ".complete"
    if binary.exists() and complete.is_file() and complete.read_text() == CODE_SERVER_VERSION:
        return binary
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    node_dir = node24.parent.parent
    env = {
        **os.environ,
        "PATH": f"{node24.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Native modules (argon2, kerberos, node-pty...) build against Node 24's bundled headers,
        # offline, instead of downloading them.
        "npm_config_nodedir": str(node_dir),
        # code-server's own install scripts fetch VS Code's node_modules; npm 11 blocks scripts.
        "npm_config_dangerously_allow_all_scripts": "true",
        "npm_config_jobs": "2",
    }
    run_step(
        [
            npm(),
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(folder),
            f"code-server@{CODE_SERVER_VERSION}",
        ],
        cwd=folder,
        timeout=1500,
        env=env,
        what=f"npm install code-server@{CODE_SERVER_VERSION} (native builds take minutes)",
    )
    version = run_step(
        [str(binary), "--version"], cwd=folder, timeout=60, env=env, what="code-server --version"
    )
    if CODE_SERVER_VERSION not in version:
        raise ToolchainUnavailable(f"code-server --version printed {version!r}")
    complete.write_text(CODE_SERVER_VERSION)
    return binary


def ensure_toolchain() -> Toolchain:
    """Install (once) and return code-server, its Node 24 and Chromium."""
    root = cache_dir()
    with _locked(root):
        chromium = _ensure_apt_packages()
        node24 = _ensure_node24(root)
        code_server = _ensure_code_server(root, node24)
    return Toolchain(node24=node24, code_server=code_server, chromium=chromium)


if __name__ == "__main__":  # a developer can pre-install with: python vscode_toolchain.py
    print(ensure_toolchain())
