"""The extension end to end in a real VS Code (code-server in headless Chromium), real server.

One VS Code session serves the module: the ``.vsix`` is installed into code-server with a small
test-only driver extension (``driver/``), a copy of ``docs/example`` is opened, and the driver runs
the extension's own "Run Agent…" command: a dry run, a run that the test cancels with the progress
notification's Cancel button, a run on the example's ``command`` backend, and two runs of a
``fixer`` agent whose model proposes an edit. That model is a scripted OpenAI-compatible fake on
127.0.0.1 (``tests/fakes/providers.py``), defined as a backend in the (trusted) workspace's
``agentls.toml``: each edit comes through the real tool loop (a ``propose_edit`` call, its result,
a final answer). The test settles the edits as a user does, with real mouse clicks: for one run
"Accept All" in the extension's notification (applied at once, no second question), for the other
"Review…", then the change ticked and "Apply" pressed in VS Code's refactor preview; then "File:
Save All" from the command palette. The file on disk and the runs' history records (edits
``applied``) show the outcome. The fixer's ``handoffs`` (Copilot's format) are offered as buttons
after its run: the test presses the one to the outline agent, finds the handoff's prompt in the
task box, and runs it.

The driver writes what the editor shows to a JSON report; when it needs a user's hand it writes
``<report>.ask-<what>`` and waits, and the test does that on the page (``USER_ACTIONS``). The tests
read the report, read the History view straight from the page through the Chrome DevTools Protocol
(what a user sees), run an agent once more through the command palette with real key presses, take
screenshots, and check that every process the session started is gone afterwards.

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

from tests.fakes.providers import Call, FakeProvider, stream, tool_calls
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
"""Seconds from launching the browser to the driver's report or its first request for a user's
hand (first start of VS Code included), and from one of those to the next."""


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


FIXER_AGENT = """---
description: Fixes the code it is given (added by the test; its model is a scripted fake)
backend: scripted
handoffs:
  - label: Outline the result
    agent: outline
    prompt: Outline the fixed cart
  - label: Ask Copilot
    agent: agent
    send: true
---
Fix what the task asks. Propose each change with the propose_edit tool.
"""
"""Its handoffs: one to the example's outline agent, one to Copilot's built-in agent (which agentls
cannot run, so the extension does not offer it)."""
CART_BUG = "existing.quantity += 1  # ignores item.quantity"
CART_FIX = "existing.quantity += item.quantity"
PRICE_BUG = "return int(euros) * 100 + int(cents or 0)"
PRICE_FIX = 'return int(euros) * 100 + int((cents or "0").ljust(2, "0")[:2])'


def _add_fixer_agent(workspace: Path, provider: FakeProvider) -> None:
    """An agent on an OpenAI-compatible backend whose model is ``provider``, scripted for two runs
    that each propose one edit to the cart through ``propose_edit``, then answer."""
    (workspace / ".agents" / "fixer.md").write_text(FIXER_AGENT)
    with (workspace / "agentls.toml").open("a") as f:
        f.write(
            f"""
[backends.scripted]
kind = "openai"
base_url = "{provider.base_url}"
model = "{provider.model}"
max_retries = 0
"""
        )
    cart = "src/shop/cart.py"
    provider.script(
        tool_calls(
            Call("propose_edit", {"path": cart, "old_text": CART_BUG, "new_text": CART_FIX})
        ),
        stream("Each add now counts ", "the item's quantity."),
        tool_calls(
            Call("propose_edit", {"path": cart, "old_text": PRICE_BUG, "new_text": PRICE_FIX})
        ),
        stream("Cents are read ", "as two digits."),
    )


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
    vsix: Path,
    root: Path,
    server_command: list[str],
    *,
    report: bool,
    provider: FakeProvider | None = None,
) -> Iterator[VSCodeSession]:
    """Start code-server with the extension on a copy of the example, and Chromium showing it.

    With ``report`` the driver extension runs its steps (the test doing on the page what it asks
    for) and the session is yielded once its report is in; without, the session is yielded as soon
    as the browser is up. ``provider`` is the model of the ``fixer`` agent the driver runs.
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
    if provider is not None:
        _add_fixer_agent(workspace, provider)
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
        # VS Code in a browser saves after a second by default; the desktop app, whose users
        # save themselves, does not. Like the desktop: an applied edit stays unsaved until saved.
        "files.autoSave": "off",
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
            _serve_driver(session, report_file)
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


def _serve_driver(session: VSCodeSession, report_file: Path) -> None:
    """Do on the page what the driver asks for (``<report>.ask-<what>``) until its report is in."""
    done: set[str] = set()

    def asked() -> list[str]:
        prefix = report_file.name + ".ask-"
        return sorted(
            p.name.removeprefix(prefix)
            for p in report_file.parent.glob(prefix + "*")
            if p.name.removeprefix(prefix) not in done
        )

    while True:
        _wait_until(
            "the driver's report or its next request",
            lambda: report_file.is_file() or asked(),
            REPORT_TIMEOUT,
            0.3,
        )
        if report_file.is_file():
            return
        for what in asked():
            done.add(what)
            if what not in USER_ACTIONS:
                raise AssertionError(f"the driver asked for {what!r}, which the test cannot do")
            try:
                USER_ACTIONS[what](session)
            except AssertionError as e:
                shot = session.root / f"failed-{what}.png"
                with suppress(ToolchainUnavailable):
                    session.cdp("screenshot", str(shot))
                raise AssertionError(f"{what}: {e} (the page then: {shot})") from e


def _press_cancel(session: VSCodeSession) -> None:
    """The slow run is streaming: note the status bar, press its progress notification's Cancel."""
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


def _button_center(session: VSCodeSession, container_js: str, label: str) -> dict[str, Any] | None:
    """Where a visible button labelled ``label`` is inside the element ``container_js`` finds,
    with that element's text; None while there is none (or it is still moving into place)."""
    where = f"""(() => {{
      const box = {container_js};
      const button = box && [...box.querySelectorAll('.monaco-button')]
        .find(b => b.textContent.trim() === {json.dumps(label)});
      if (!button) return null;
      const r = button.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) return null;
      return {{x: Math.round(r.x + r.width / 2), y: Math.round(r.y + r.height / 2),
               text: box.textContent}};
    }})()"""
    first = session.evaluate(where)
    if first is None:
        return None
    time.sleep(0.3)  # a toast slides in: click only once it stands still
    second = session.evaluate(where)
    return second if second == first else None


def _click_button(session: VSCodeSession, container_js: str, label: str, what: str) -> str:
    """Click (the mouse, at its place on the page) the button ``label`` of ``container_js`` once it
    is there, until it goes away: notifications close, the refactor preview hides. Returns the
    container's text as it was. Clicked again only if still there after 10 s: the toasts move
    when another one closes, and a click can land where the button was."""
    deadline = time.monotonic() + 60
    text = None
    while True:
        place = _wait_until(what, lambda: _button_center(session, container_js, label), 30, 0.5)
        text = text or str(place["text"])
        session.cdp("click", f"{place['x']},{place['y']}")
        try:
            _wait_until(
                f"{what} to close", lambda: not _button_center(session, container_js, label), 10
            )
            return text
        except AssertionError:
            session.observed.setdefault("clicked_again", []).append(what)
            if time.monotonic() > deadline:
                raise


EDIT_OFFER = (
    "[...document.querySelectorAll('.notification-toast .notification-list-item')]"
    ".find(t => t.textContent.includes('fixer proposed'))"
)
HANDOFF_OFFER = (
    "[...document.querySelectorAll('.notification-toast .notification-list-item')]"
    ".find(t => t.textContent.includes('fixer is done'))"
)
REFACTOR_PREVIEW = "document.querySelector('.bulk-edit-panel')"
CART_TAB_DIRTY = (
    "[...document.querySelectorAll('.tabs-container .tab')]"
    ".some(t => t.textContent.includes('cart.py') && t.classList.contains('dirty'))"
)
TASK_BOX = """(() => {
  const widget = document.querySelector('.quick-input-widget');
  if (!widget || widget.style.display === 'none') return null;
  const title = widget.querySelector('.quick-input-title');
  const box = widget.querySelector('input');
  if (!title || !box || !title.textContent.startsWith('Run ')) return null;
  return {title: title.textContent, value: box.value};
})()"""


def _save_all(session: VSCodeSession) -> None:
    """ "File: Save All" from the command palette, typed."""
    session.cdp("keys", json.dumps([{"key": "Escape"}, {"key": "F1", "wait": 800}]))
    session.cdp("keys", json.dumps([{"text": "File: Save All", "wait": 800}]))
    _wait_until(
        "File: Save All in the command palette",
        lambda: [r for r in session.evaluate(QUICK_INPUT_ROWS) if "Save All" in r],
        20,
        0.5,
    )
    session.cdp("keys", json.dumps([{"key": "Enter", "wait": 500}]))


def _accept_edits(session: VSCodeSession) -> None:
    """Press "Accept All" on the fixer's offer: the cart's tab turns dirty with no further
    question (no refactor preview). Then take the run's next step, its handoff to the outline
    agent: the handoff's prompt fills the task box, Enter runs it. Then save."""
    offer = "the notification offering the fixer's edit"
    session.observed["accept_offer"] = _click_button(session, EDIT_OFFER, "Accept All", offer)
    _wait_until(
        "the cart's tab to show unsaved changes", lambda: session.evaluate(CART_TAB_DIRTY), 30
    )
    session.observed["preview_after_accept"] = session.evaluate(
        f"!!{REFACTOR_PREVIEW} && {REFACTOR_PREVIEW}.getBoundingClientRect().width > 0"
    )
    _wait_until(
        "the fixer's next steps",
        lambda: _button_center(session, HANDOFF_OFFER, "Outline the result"),
        30,
        0.5,
    )
    session.observed["handoff_buttons"] = session.evaluate(
        f"[...{HANDOFF_OFFER}.querySelectorAll('.monaco-button')].map(b => b.textContent.trim())"
    )
    session.observed["handoff_offer"] = _click_button(
        session, HANDOFF_OFFER, "Outline the result", "the fixer's next steps"
    )
    session.observed["handoff_task_box"] = _wait_until(
        "the task box of the handoff", lambda: session.evaluate(TASK_BOX), 20, 0.5
    )
    session.cdp("keys", json.dumps([{"key": "Enter", "wait": 500}]))
    _wait_until("the task box to close", lambda: session.evaluate(TASK_BOX) is None, 20, 0.5)
    _save_all(session)


def _review_edits(session: VSCodeSession) -> None:
    """Press "Review…" on the fixer's offer: VS Code's refactor preview lists the change unticked;
    tick the file, press "Apply", then save."""
    offer = "the notification offering the fixer's edit"
    session.observed["review_offer"] = _click_button(session, EDIT_OFFER, "Review…", offer)
    apply = _wait_until(
        "the refactor preview's Apply button",
        lambda: _button_center(session, REFACTOR_PREVIEW, "Apply"),
        30,
        0.5,
    )
    session.observed["refactor_preview"] = apply["text"]
    checkboxes = f"[...{REFACTOR_PREVIEW}.querySelectorAll('.edit-checkbox')]"
    session.observed["ticked_before"] = session.evaluate(
        f"{checkboxes}.map(c => c.getAttribute('aria-checked'))"
    )
    file_box = session.evaluate(
        f"""(() => {{
          const r = {checkboxes}[0].getBoundingClientRect();
          return `${{Math.round(r.x + r.width / 2)}},${{Math.round(r.y + r.height / 2)}}`;
        }})()"""
    )
    session.cdp("click", file_box)

    def all_ticked() -> list[str] | None:
        states: list[str] = session.evaluate(
            f"{checkboxes}.map(c => c.getAttribute('aria-checked'))"
        )
        return states if states and all(t == "true" for t in states) else None

    session.observed["ticked_after"] = _wait_until("the change to be ticked", all_ticked, 20, 0.5)
    session.cdp("screenshot", str(session.root / "vscode-refactor-preview.png"))
    _click_button(session, REFACTOR_PREVIEW, "Apply", "the refactor preview's Apply button")
    _wait_until(
        "the cart's tab to show unsaved changes", lambda: session.evaluate(CART_TAB_DIRTY), 30
    )
    _save_all(session)


USER_ACTIONS: dict[str, Callable[[VSCodeSession], None]] = {
    "cancel": _press_cancel,
    "accept-edits": _accept_edits,
    "review-edits": _review_edits,
}
"""What the driver may ask the test to do on the page, by the name it asks with."""


@pytest.fixture(scope="module")
def fixer_model() -> Iterator[FakeProvider]:
    """The fixer agent's model: an OpenAI-compatible fake on 127.0.0.1, scripted to edit."""
    with FakeProvider("openai") as provider:
        yield provider


@pytest.fixture(scope="module")
def vscode_session(
    vsix: Path, tmp_path_factory: pytest.TempPathFactory, fixer_model: FakeProvider
) -> Iterator[VSCodeSession]:
    """code-server on the example with the real server, after the driver reported."""
    root = tmp_path_factory.mktemp("vscode")
    command = [sys.executable, "-m", "agentls", "serve"]
    with launch_vscode(vsix, root, command, report=True, provider=fixer_model) as s:
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
        "edit accepted",
        "edit reviewed",
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


def test_accepting_a_proposed_edit_writes_the_file(
    vscode_session: VSCodeSession, fixer_model: FakeProvider
) -> None:
    """The model proposed an edit through the tool loop; "Accept All" in the notification puts it
    in the cart's buffer at once (no second question), and "Save All" on disk."""
    report, observed = vscode_session.report, vscode_session.observed
    run, record = report["accepted"]["run"], report["accepted"]["record"]
    assert run["status"] == "succeeded", run
    assert run["output"] == "Each add now counts the item's quantity."
    assert [(c["tool"], c["status"]) for c in run["tool_calls"]] == [("propose_edit", "succeeded")]
    [proposed] = run["edits"]
    assert proposed["path"] == "src/shop/cart.py" and proposed["state"] == "proposed"
    # The model's second turn carried the tool's answer: the edit came through the real loop.
    chats = [r for r in fixer_model.requests if r.path.endswith("/chat/completions")]
    assert len(chats) == 4  # two runs of two turns
    assert any(m.get("role") == "tool" for m in chats[1].json["messages"])

    assert "agentls: fixer proposed 1 edit(s) to 1 file(s)" in observed["accept_offer"]
    assert "Nothing is written until you accept" in observed["accept_offer"]
    assert observed["preview_after_accept"] is False
    assert CART_FIX in report["accepted"]["saved"]  # the editor's buffer, saved
    [applied] = record["edits"]
    assert applied["id"] == proposed["id"] and applied["state"] == "applied"
    history = {row["id"]: row for row in report["historyRows"]}
    assert history[run["id"]]["label"] == "fixer: Count every unit added"


def test_reviewing_a_proposed_edit_in_the_refactor_preview(
    vscode_session: VSCodeSession,
) -> None:
    """ "Review…" opens VS Code's refactor preview with the change unticked; ticked and applied
    there, it reaches the file on disk after "Save All", and history says applied."""
    report, observed = vscode_session.report, vscode_session.observed
    run, record = report["reviewed"]["run"], report["reviewed"]["record"]
    assert run["status"] == "succeeded", run
    assert "cart.py" in observed["refactor_preview"]
    assert observed["ticked_before"] == ["false", "false"]  # the file and its one change
    assert observed["ticked_after"] == ["true", "true"]
    assert [e["state"] for e in record["edits"]] == ["applied"]

    on_disk = (vscode_session.workspace / "src" / "shop" / "cart.py").read_text()
    assert CART_FIX in on_disk and CART_BUG not in on_disk  # the accepted edit
    assert PRICE_FIX in on_disk and PRICE_BUG not in on_disk  # the reviewed one
    assert report["reviewed"]["saved"] == on_disk


def test_a_runs_handoff_runs_the_next_agent_with_its_prompt(vscode_session: VSCodeSession) -> None:
    """After the fixer's run, its handoff to the outline agent is a button; pressing it fills the
    task box with the handoff's prompt (``send`` is false), and Enter runs the outline agent."""
    session, observed = vscode_session, vscode_session.observed
    run = session.report["accepted"]["run"]
    assert [h["label"] for h in run["handoffs"]] == ["Outline the result", "Ask Copilot"]
    assert "agentls: fixer is done. Next step?" in observed["handoff_offer"]
    # Copilot's built-in agent cannot run here, so it is not offered.
    assert observed["handoff_buttons"] == ["Outline the result"]
    assert observed["handoff_task_box"] == {
        "title": "Run outline",
        "value": "Outline the fixed cart",
    }
    rows = _wait_until(
        "the handoff's run in the History view",
        lambda: [
            r
            for r in _history_view_rows(session)
            if "outline: Outline the fixed cart" in r and "Succeeded" in r
        ],
        60,
        0.5,
    )
    assert rows
