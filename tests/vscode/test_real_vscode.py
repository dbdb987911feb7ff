"""The extension end to end in a real VS Code (code-server in headless Chromium), real server.

One VS Code session serves the module: the ``.vsix`` is installed into code-server with a small
test-only driver extension (``driver/``), a copy of ``docs/example`` is opened, and the driver runs
the extension's own "Run Agent…" command twice, a dry run and a run on the example's ``command``
backend, then writes what the editor shows to a JSON report. The tests read that report, read the
History view straight from the page through the Chrome DevTools Protocol (what a user sees), run an
agent once more through the command palette with real key presses, take a screenshot, and check that
every process the session started is gone afterwards.

Loopback only: code-server listens on 127.0.0.1 and its extension gallery points at a closed
loopback port; Chromium runs with background networking off. Everything written goes to a
temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.vscode.vscode_toolchain import (
    EXTENSION_DIR,
    Toolchain,
    ToolchainUnavailable,
    ensure_toolchain,
    run_step,
    skip_loudly,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLE = REPO / "docs" / "example"
SCREENSHOT_DIR = EXTENSION_DIR / "media"
REPORT_TIMEOUT = 150.0
"""Seconds from launching the browser to the driver's report (first start of VS Code included)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class VSCodeSession:
    """A running code-server with Chromium attached, and what it needs to be inspected and ended."""

    toolchain: Toolchain
    root: Path
    workspace: Path
    cdp_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    descendants: dict[int, psutil.Process] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    """What the driver extension saw."""
    observed: dict[str, Any] = field(default_factory=dict)
    """What the test saw on the page while the driver waited."""

    def cdp(self, action: str, arg: str, timeout: float = 40) -> str:
        """Run one Chrome DevTools Protocol action (see cdp.mjs) and return what it printed."""
        return run_step(
            [str(self.toolchain.node24), str(HERE / "cdp.mjs"), str(self.cdp_port), action, arg],
            cwd=HERE,
            timeout=timeout,
            what=f"cdp {action}",
        )

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the workbench page."""
        return json.loads(self.cdp("eval", expression) or "null")

    def remember_descendants(self) -> None:
        """Note every process below the ones we started, so the cleanup check can find leftovers."""
        for proc in self.processes:
            try:
                parent = psutil.Process(proc.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    self.descendants[p.pid] = p
            except psutil.NoSuchProcess:
                continue

    def stop(self) -> list[str]:
        """End everything this session started; returns descriptions of processes still alive."""
        self.remember_descendants()
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        gone_deadline = time.monotonic() + 10
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, gone_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        _, alive = psutil.wait_procs(list(self.descendants.values()), timeout=5)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                continue
        self.processes.clear()
        return [f"{p.pid} {' '.join(_cmdline(p))}" for p in alive]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ["?"]


SLOW_AGENT = """---
description: Works until it is cancelled (added by the test)
backend: slow-script
---
Take your time.
"""
SLOW_BACKEND = """
[backends.slow-script]
kind = "command"
argv = ["python3", "-c", "import sys, time; sys.stdin.read(); print('working on it', flush=True); \
time.sleep(120)"]
"""


def _add_slow_agent(workspace: Path) -> None:
    """An agent whose command runs until cancelled, to press the Cancel button on."""
    (workspace / ".agents" / "slow.md").write_text(SLOW_AGENT)
    with (workspace / "agentls.toml").open("a") as f:
        f.write(SLOW_BACKEND)


def _package_driver(out_dir: Path) -> Path:
    """The driver extension as a .vsix, packaged with the extension's own vsce."""
    driver = out_dir / "driver"
    shutil.copytree(HERE / "driver", driver)
    vsix = out_dir / "driver.vsix"
    run_step(
        [
            str(EXTENSION_DIR / "node_modules" / ".bin" / "vsce"),
            "package",
            "--allow-missing-repository",
            "--out",
            str(vsix),
        ],
        cwd=driver,
        timeout=120,
        what="vsce package (driver)",
    )
    return vsix


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, so cleanup reaches every child
        )


@contextmanager
def launch_vscode(
    vsix: Path, root: Path, server_command: list[str], *, report: bool
) -> Iterator[VSCodeSession]:
    """Start code-server with the extension on a copy of the example, and Chromium showing it.

    With ``report`` the driver extension runs its steps and the session is yielded once its report
    is in; without, the session is yielded as soon as the browser is up.
    """
    try:
        toolchain = ensure_toolchain()
    except ToolchainUnavailable as e:
        skip_loudly(f"a real VS Code could not be installed here: {e}")
    if not EXAMPLE.is_dir():
        pytest.fail(f"the example workspace {EXAMPLE} is missing")

    workspace = root / "example"
    shutil.copytree(EXAMPLE, workspace)
    _add_slow_agent(workspace)
    user_data, extensions = root / "user-data", root / "extensions"
    (user_data / "User").mkdir(parents=True)
    # The agentls settings name programs and folders of the machine the server runs on, so they
    # are machine-scoped: code-server (a remote window) reads them from the Machine settings.
    (user_data / "Machine").mkdir(parents=True)
    machine = {
        "agentls.server.command": server_command,
        "agentls.data_dir": str(root / "agentls-data"),
        "agentls.log_level": "DEBUG",
    }
    (user_data / "Machine" / "settings.json").write_text(json.dumps(machine, indent=2))
    user = {
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "chat.disableAIFeatures": True,
        "workbench.colorTheme": "Default Dark Modern",
        "workbench.secondarySideBar.defaultVisibility": "hidden",
    }
    (user_data / "User" / "settings.json").write_text(json.dumps(user, indent=2))

    report_file = root / "report.json"
    env = {
        **os.environ,
        "PATH": f"{toolchain.node24.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_CACHE_HOME": str(root / "cache"),
        # A closed loopback port: code-server must not reach out to a public extension gallery.
        "EXTENSIONS_GALLERY": json.dumps(
            {
                "serviceUrl": "http://127.0.0.1:9/gallery",
                "itemUrl": "http://127.0.0.1:9/items",
                "resourceUrlTemplate": "http://127.0.0.1:9/{publisher}/{name}/{version}/{path}",
            }
        ),
    }
    env.pop("VSCODE_IPC_HOOK_CLI", None)
    env.pop("AGENTLS_E2E_REPORT", None)
    if report:
        env["AGENTLS_E2E_REPORT"] = str(report_file)
    base = [str(toolchain.code_server), "--user-data-dir", str(user_data)]
    base += ["--extensions-dir", str(extensions)]
    for package in (vsix, _package_driver(root)):
        run_step(
            [*base, "--install-extension", str(package)],
            cwd=root,
            timeout=120,
            env=env,
            what=f"code-server --install-extension {package.name}",
        )

    port, cdp_port = _free_port(), _free_port()
    session = VSCodeSession(toolchain=toolchain, root=root, workspace=workspace, cdp_port=cdp_port)
    try:
        session.processes.append(
            _start(
                [
                    *base,
                    "--bind-addr",
                    f"127.0.0.1:{port}",
                    "--auth",
                    "none",
                    "--disable-telemetry",
                    "--disable-update-check",
                    "--disable-workspace-trust",
                    "--disable-getting-started-override",
                    str(workspace),
                ],
                root / "code-server.log",
                env,
            )
        )
        _wait_until(
            "code-server to answer", lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), 60
        )
        session.processes.append(
            _start(
                [
                    str(toolchain.chromium),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--no-first-run",
                    "--window-size=1440,900",
                    f"--remote-debugging-port={cdp_port}",
                    f"--user-data-dir={root / 'chromium'}",
                    f"http://127.0.0.1:{port}/?folder={workspace}",
                ],
                root / "chromium.log",
                env,
            )
        )
        if report:
            marker = report_file.with_name(report_file.name + ".cancel-me")
            _wait_until("the slow run", lambda: marker.is_file() or report_file.is_file(), 120, 0.3)
            if marker.is_file():
                session.observed["status_bar"] = session.evaluate(
                    "document.querySelector('.statusbar')?.textContent || ''"
                )
                session.observed["cancel_clicked"] = session.evaluate(
                    """(() => {
                      const toast = [...document.querySelectorAll('.notification-list-item')]
                        .find(t => t.textContent.includes('agentls: slow'));
                      const button = toast && [...toast.querySelectorAll('.monaco-button')]
                        .find(b => b.textContent === 'Cancel');
                      if (!button) return false;
                      button.click();
                      return true;
                    })()"""
                )
            _wait_until("the driver's report", report_file.is_file, REPORT_TIMEOUT, 0.5)
            session.report = json.loads(report_file.read_text())
        else:
            _wait_until(
                "the browser's debugging port",
                lambda: _http_ok(f"http://127.0.0.1:{cdp_port}/json/version"),
                60,
            )
        session.remember_descendants()
        yield session
    finally:
        leftovers = session.stop()
        assert not leftovers, f"processes outlived the VS Code session: {leftovers}"


@pytest.fixture(scope="module")
def vscode_session(vsix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VSCodeSession]:
    """code-server on the example with the real server, after the driver reported."""
    root = tmp_path_factory.mktemp("vscode")
    with launch_vscode(vsix, root, [sys.executable, "-m", "agentls", "serve"], report=True) as s:
        yield s


def _logs(session: VSCodeSession) -> str:
    parts = []
    for name in ("code-server.log",):
        path = session.root / name
        if path.is_file():
            parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


def test_driver_ran_every_step(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    assert report["error"] is None, f"{report['error']}\n{_logs(vscode_session)}"
    assert report["steps"] == [
        "activated",
        "selected",
        "dry run",
        "cancelled",
        "preview and metrics",
        "restarted",
        "run",
        "views",
    ]
    assert report["serverState"] == "running"


def test_the_language_server_is_the_real_agentls_process(vscode_session: VSCodeSession) -> None:
    servers = [
        p
        for p in vscode_session.descendants.values()
        if _cmdline(p)[-3:] == ["-m", "agentls", "serve"]
    ]
    assert servers, "no `python -m agentls serve` process was started by VS Code"
    assert _cmdline(servers[0])[0] == sys.executable
    # Never in the workspace, never with the working directory on sys.path (docs/security.md).
    live = [p for p in servers if p.is_running()]
    assert live, "the agentls server is no longer running"
    for server in live:
        cwd = Path(server.cwd())
        assert vscode_session.workspace not in (cwd, *cwd.parents), cwd
        assert server.environ().get("PYTHONSAFEPATH") == "1"


def test_dry_run_document_shows_the_exact_prompt(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    result, doc = report["dryRun"], report["dryRunDocument"]
    assert result["status"] == "succeeded"
    assert "Check the cart for rounding bugs" in result["prompt"]
    assert doc.startswith("# reviewer: Succeeded")
    # The run's document opened without taking the focus: the next run attaches the same code.
    assert report["activeAfterDryRun"].endswith("/src/shop/cart.py")
    assert "Nothing was sent to the backend." in doc
    assert "You are a careful code reviewer" in doc  # the agent's body, rendered
    assert "def total_cents" in doc  # the selection went into the prompt
    assert "| src/shop/cart.py | selection | included |" in doc


def test_command_backend_run_streams_into_markdown(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    result, doc = report["run"], report["runDocument"]
    assert result["status"] == "succeeded", result
    assert result["output"].startswith("# Outline")
    assert doc.startswith("# outline: Succeeded")
    assert "**Task:** Outline the cart" in doc
    assert "## src/shop/cart.py (selection)" in doc
    assert "class `Cart`" in doc
    run_docs = [d for d in report["documents"] if "outline" in d["uri"]]
    assert run_docs and run_docs[0]["languageId"] == "markdown"


def test_views_show_agents_and_the_run(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    agents = {row["label"]: row for row in report["agentRows"]}
    assert set(agents) >= {"outline", "reviewer"}
    assert agents["outline"]["icon"] == "hubot"
    run_id = report["run"]["id"]
    history = {row["id"]: row for row in report["historyRows"]}
    assert history[run_id]["label"] == "outline: Outline the cart"
    assert history[run_id]["description"].startswith("Succeeded · ")
    assert history[run_id]["icon"] == "pass"
    # The cancelled run from before the server restart is still in the history.
    cancelled = history[report["cancelled"]["id"]]
    assert cancelled["label"] == "slow: Wait to be cancelled"
    assert cancelled["icon"] == "circle-slash"


def test_preview_and_metrics_documents(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    assert "Preview it" in report["preview"]["prompt"]
    doc = report["previewDocument"]
    assert "The exact prompt a run would send (nothing was sent):" in doc
    assert "| src/shop/cart.py | selection | included |" in doc
    assert "memory" in report["metrics"]
    assert "## memory" in report["metricsDocument"]
    assert "| rss_bytes |" in report["metricsDocument"]


def test_server_took_the_settings_without_complaint(vscode_session: VSCodeSession) -> None:
    """The mapped settings (never VS Code's raw section) reached the server, and it trusts the
    workspace because VS Code does."""
    status = vscode_session.report["status"]
    assert status["config_problems"] == []
    assert status["trusted"] is True
    assert status["folders"] == [str(vscode_session.workspace)]
    assert (vscode_session.root / "agentls-data").is_dir()  # agentls.data_dir was applied


def test_restart_server_command(vscode_session: VSCodeSession) -> None:
    report = vscode_session.report
    assert report["stateAfterRestart"] == "running"
    assert report["agentsAfterRestart"] >= 3
    # One server now: the one from before the restart has exited.
    servers = [
        p
        for p in vscode_session.descendants.values()
        if p.is_running() and _cmdline(p)[-3:] == ["-m", "agentls", "serve"]
    ]
    assert len(servers) == 1


def _history_view_rows(session: VSCodeSession) -> list[str]:
    return session.evaluate(
        """(() => {
          const panes = [...document.querySelectorAll('.pane')];
          const pane = panes.find(p => (p.querySelector('.pane-header')?.textContent || '')
                                        .toUpperCase().includes('HISTORY'));
          if (!pane) return [];
          return [...pane.querySelectorAll('.monaco-list-row')].map(r => r.textContent);
        })()"""
    )


def test_history_view_on_screen_lists_the_run(vscode_session: VSCodeSession) -> None:
    """Read the History view from the page itself: what a user sees, not what the extension says."""
    rows = _wait_until(
        "the History view on screen",
        lambda: [r for r in _history_view_rows(vscode_session) if "Outline the cart" in r],
        30,
        0.5,
    )
    assert any("outline: Outline the cart" in r and "Succeeded" in r for r in rows), rows
    shot = vscode_session.root / "vscode-run.png"
    vscode_session.cdp("screenshot", str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("AGENTLS_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, SCREENSHOT_DIR / "screenshot-run.png")


QUICK_INPUT_ROWS = (
    "[...document.querySelectorAll('.quick-input-widget .monaco-list-row')].map(r => r.textContent)"
)


def test_palette_run_with_real_key_presses(vscode_session: VSCodeSession) -> None:
    """F1, "agentls: Run Agent…", pick an agent, type a task: the run lands in the History view."""
    session = vscode_session
    session.cdp("keys", json.dumps([{"key": "Escape"}, {"key": "F1", "wait": 800}]))
    session.cdp("keys", json.dumps([{"text": "agentls: Run Agent…", "wait": 800}]))
    palette = _wait_until(
        "agentls: Run Agent… in the command palette",
        lambda: [r for r in session.evaluate(QUICK_INPUT_ROWS) if "Run Agent…" in r],
        20,
        0.5,
    )
    assert any("agentls: Run Agent…" in row.replace("\xa0", " ") for row in palette), palette
    session.cdp("keys", json.dumps([{"key": "Enter", "wait": 1500}]))
    picks = _wait_until(
        "the agent picker",
        lambda: [r for r in session.evaluate(QUICK_INPUT_ROWS) if "Outlines the files" in r],
        20,
        0.5,
    )
    picks = session.evaluate(QUICK_INPUT_ROWS)
    assert any("outline" in p and "Outlines the files" in p for p in picks), picks
    assert any("reviewer" in p for p in picks), picks
    shot = session.root / "vscode-pick.png"
    session.cdp("screenshot", str(shot))
    session.cdp("keys", json.dumps([{"text": "outline", "wait": 500}, {"key": "Enter"}]))
    prompt = _wait_until(
        "the task input box",
        lambda: session.evaluate(
            "document.querySelector('.quick-input-widget .quick-input-title')?.textContent || ''"
        ),
        20,
        0.5,
    )
    assert "Run outline" in prompt
    session.cdp("keys", json.dumps([{"text": "Outline from the palette"}, {"key": "Enter"}]))
    rows = _wait_until(
        "the palette run in the History view",
        lambda: [
            r
            for r in _history_view_rows(session)
            if "Outline from the palette" in r and "Succeeded" in r
        ],
        60,
        0.5,
    )
    assert rows
    editor_text = session.evaluate(
        "[...document.querySelectorAll('.editor-group-container .view-lines')]"
        ".map(e => e.textContent).join('\\n')"
    ).replace("\xa0", " ")  # the editor renders spaces as no-break spaces
    assert "# outline: Succeeded" in editor_text
    assert "**Task:** Outline from the palette" in editor_text
    if os.environ.get("AGENTLS_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, SCREENSHOT_DIR / "screenshot-pick.png")


def test_clicking_a_history_entry_reopens_its_output(vscode_session: VSCodeSession) -> None:
    """Close every editor, click the first run in the History view: its output comes back."""
    session = vscode_session
    session.cdp("keys", json.dumps([{"key": "Escape"}, {"key": "F1", "wait": 800}]))
    session.cdp("keys", json.dumps([{"text": "View: Close All Editors", "wait": 800}]))
    _wait_until(
        "Close All Editors in the palette",
        lambda: [r for r in session.evaluate(QUICK_INPUT_ROWS) if "Close All Editors" in r],
        20,
        0.5,
    )
    session.cdp("keys", json.dumps([{"key": "Enter", "wait": 1000}]))
    _wait_until(
        "no open editor",
        lambda: session.evaluate("document.querySelectorAll('.tabs-container .tab').length === 0"),
        20,
        0.5,
    )
    where = session.evaluate(
        """(() => {
          const pane = [...document.querySelectorAll('.pane')].find(p =>
            (p.querySelector('.pane-header')?.textContent || '').toUpperCase().includes('HISTORY'));
          const row = [...pane.querySelectorAll('.monaco-list-row')]
            .find(r => r.textContent.includes('outline: Outline the cart'));
          const box = row.getBoundingClientRect();
          return `${Math.round(box.x + 40)},${Math.round(box.y + box.height / 2)}`;
        })()"""
    )
    session.cdp("click", where)
    text = _wait_until(
        "the run's output in an editor",
        lambda: "".join(
            session.evaluate(
                "[...document.querySelectorAll('.editor-group-container .view-lines')]"
                ".map(e => e.textContent)"
            )
        ).replace("\xa0", " "),
        20,
        0.5,
    )
    assert "# outline: Succeeded" in text
    assert "**Task:** Outline the cart" in text


def test_a_server_that_cannot_start_gets_one_clear_message(
    vsix: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A broken server command: one notification that names it, with a button to the setting."""
    root = tmp_path_factory.mktemp("vscode-broken")
    command = [sys.executable, "-c", "import sys; sys.exit('agentls is not installed here')"]
    with launch_vscode(vsix, root, command, report=False) as session:
        toasts = _wait_until(
            "the start failure notification",
            lambda: session.evaluate(
                "[...document.querySelectorAll('.notification-toast')].map(t => t.textContent)"
            ),
            60,
            0.5,
        )
        time.sleep(2)  # any second message would have arrived by now
        toasts = session.evaluate(
            "[...document.querySelectorAll('.notification-list-item')].map(t => t.textContent)"
        )
        errors = [t for t in toasts if "agentls" in t]
        assert len(errors) == 1, toasts
        assert "could not start with" in errors[0]
        assert "agentls is not installed here" in errors[0]
        assert "Open Setting" in errors[0]
        session.evaluate(
            "[...document.querySelectorAll('.notification-list-item .monaco-button')]"
            ".find(b => b.textContent === 'Open Setting').click()"
        )
        shown = _wait_until(
            "the settings editor filtered to agentls.server.command",
            lambda: [
                text
                for text in session.evaluate(
                    "[...document.querySelectorAll('.settings-editor .setting-item-contents')]"
                    ".map(e => e.textContent)"
                )
                if "Server: Command" in text
            ],
            20,
            0.5,
        )
        assert len(shown) == 1, shown


def test_the_progress_cancel_button_stops_a_run(vscode_session: VSCodeSession) -> None:
    observed, report = vscode_session.observed, vscode_session.report
    # Output streamed into the document while the run was still going.
    assert report["streamedWhileRunning"].startswith("# slow: Running…")
    assert "working on it" in report["streamedWhileRunning"]
    assert "agentls: 1 run" in observed["status_bar"], observed
    assert observed["cancel_clicked"] is True
    assert report["cancelled"]["status"] == "cancelled", report["cancelled"]
    assert report["cancelled"]["output"].startswith("working on it")
    assert report["cancelledDocument"].startswith("# slow: Cancelled")
    assert report["runsInFlightAfterCancel"] == 0
