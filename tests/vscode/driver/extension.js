// Test-only driver for the real-VS-Code test. After the agentls extension activates, it runs the
// agentls commands a user would (a dry run, a run to cancel, a real run on the example's `command`
// backend, two runs whose scripted model proposes an edit) with the cart file open and a selection
// made, and writes what the editor then shows (the run documents' text, the Agents and History
// view rows, the edited file) to the JSON file named by AGENTLS_E2E_REPORT. What only a user can do
// (press a notification's button) the test does on the page: the driver asks for it by writing
// `<report>.ask-<what>` and waits for the outcome. Every step is timed out, and a failure is
// reported, never swallowed.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vscode = require("vscode");

const STEP_TIMEOUT_MS = 60_000;
/** Waiting for the test to act on the page (several browser round trips, under CPU load). */
const USER_TIMEOUT_MS = 180_000;

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function waitFor(what, check, timeoutMs = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The text of a run's document once it shows the result (its footer names the run). */
function finalText(result) {
  if (!result || !result.id) throw new Error(`no run result: ${JSON.stringify(result)}`);
  return waitFor(`the document of run ${result.id}`, () =>
    vscode.workspace.textDocuments
      .filter((d) => d.uri.scheme === "agentls")
      .map((d) => d.getText())
      .find((text) => text.includes(`run ${result.id}*`)),
  );
}

/** Asks the test to do what a user would on the page (see test_real_vscode.py, ``USER_ACTIONS``). */
function ask(what) {
  fs.writeFileSync(`${process.env.AGENTLS_E2E_REPORT}.ask-${what}`, "");
}

function agentlsDocuments() {
  return vscode.workspace.textDocuments
    .filter((d) => d.uri.scheme === "agentls")
    .map((d) => ({ uri: d.uri.toString(), languageId: d.languageId, text: d.getText() }));
}

/**
 * Runs the fixer, asks the test to settle its proposed edit on the page (`what`), and waits for
 * the outcome: the run's history record says applied, and the edited file is saved.
 */
async function editAndSettle(editor, task, what) {
  const before = editor.document.getText();
  const run = await withTimeout(vscode.commands.executeCommand("agentls.runAgent", { agent: "fixer", task }), task);
  if (run?.status !== "succeeded") throw new Error(`fixer run: ${JSON.stringify(run)}`);
  ask(what);
  const record = await waitFor(
    `the edit of "${task}" to be applied`,
    async () => {
      const r = await vscode.commands.executeCommand("agentls.history.get", { id: run.id });
      const edits = r.edits ?? [];
      return edits.length > 0 && edits.every((e) => e.state === "applied") ? r : undefined;
    },
    USER_TIMEOUT_MS,
  );
  const saved = await waitFor(
    `the edit of "${task}" to be saved`,
    () => {
      const text = editor.document.getText();
      return text !== before && !editor.document.isDirty ? text : undefined;
    },
    USER_TIMEOUT_MS,
  );
  return { run, record, saved };
}

async function drive(report) {
  const ext = vscode.extensions.getExtension("agentls.agentls");
  if (!ext) throw new Error("the agentls extension is not installed");
  const api = await withTimeout(ext.activate(), "activating agentls");
  report.steps.push("activated");
  report.serverState = await waitFor("the agentls server", () => {
    const state = api.serverState();
    return state === "running" || state === "failed" ? state : undefined;
  });
  if (report.serverState !== "running") throw new Error(`server state ${report.serverState}`);

  const folder = vscode.workspace.workspaceFolders[0].uri;
  const cart = vscode.Uri.joinPath(folder, "src", "shop", "cart.py");
  const editor = await vscode.window.showTextDocument(cart);
  const lastLine = Math.min(editor.document.lineCount - 1, 26); // the Item and Cart classes
  editor.selection = new vscode.Selection(0, 0, lastLine, editor.document.lineAt(lastLine).text.length);
  report.selection = editor.document.getText(editor.selection);
  report.steps.push("selected");

  report.dryRun = await withTimeout(
    vscode.commands.executeCommand("agentls.runAgent", {
      agent: "reviewer",
      task: "Check the cart for rounding bugs",
      dryRun: true,
    }),
    "dry run",
  );
  report.dryRunDocument = await finalText(report.dryRun);
  report.activeAfterDryRun = vscode.window.activeTextEditor?.document.uri.toString();
  report.steps.push("dry run");

  // A run that only ends when cancelled: the test presses the Cancel button of its progress
  // notification once the marker file appears, and this step records how the run ended.
  const slow = vscode.commands.executeCommand("agentls.runAgent", { agent: "slow", task: "Wait to be cancelled" });
  await waitFor("the slow run to start", () => api.runsInFlight() > 0);
  report.streamedWhileRunning = await waitFor("the slow run's first output", () =>
    agentlsDocuments().find((d) => d.text.includes("working on it"))?.text,
  );
  ask("cancel");
  report.cancelled = await withTimeout(slow, "the cancelled run");
  report.cancelledDocument = await finalText(report.cancelled);
  report.runsInFlightAfterCancel = api.runsInFlight();
  report.steps.push("cancelled");

  report.preview = await withTimeout(
    vscode.commands.executeCommand("agentls.previewContext", { agent: "reviewer", task: "Preview it" }),
    "context preview",
  );
  report.previewDocument = await waitFor("the preview document", () =>
    agentlsDocuments().find((d) => d.text.startsWith("# reviewer: context preview"))?.text,
  );
  report.metrics = await withTimeout(vscode.commands.executeCommand("agentls.showMetrics"), "metrics");
  report.metricsDocument = await waitFor("the metrics document", () =>
    agentlsDocuments().find((d) => d.text.startsWith("# agentls metrics"))?.text,
  );
  report.steps.push("preview and metrics");

  await withTimeout(vscode.commands.executeCommand("agentls.restartServer"), "restart");
  report.stateAfterRestart = api.serverState();
  report.agentsAfterRestart = (await vscode.commands.executeCommand("agentls.agents.list", {})).agents.length;
  // The server's own view of its configuration: what the extension's settings mapping produced.
  report.status = await vscode.commands.executeCommand("agentls.status", {});
  report.steps.push("restarted");

  // Back to the code (preview and metrics took the focus), its selection as the user left it.
  await vscode.window.showTextDocument(editor.document, { viewColumn: editor.viewColumn });
  report.run = await withTimeout(
    vscode.commands.executeCommand("agentls.runAgent", { agent: "outline", task: "Outline the cart" }),
    "command-backend run",
  );
  report.runDocument = await finalText(report.run);
  report.steps.push("run");

  // Two runs of an agent whose model (a scripted fake on 127.0.0.1) proposes an edit to the cart
  // through the propose_edit tool. The extension offers each edit in a notification; the test
  // presses "Accept All" for the first, and "Review…" then ticks the change and presses "Apply" in
  // VS Code's refactor preview for the second, then saves, as a user would.
  report.accepted = await editAndSettle(editor, "Count every unit added", "accept-edits");
  report.steps.push("edit accepted");
  report.reviewed = await editAndSettle(editor, "Read 1.5 as 150 cents", "review-edits");
  report.steps.push("edit reviewed");

  await vscode.commands.executeCommand("workbench.view.extension.agentls");
  await withTimeout(api.refreshViews(), "refreshing views");
  report.agentRows = api.agentRows();
  report.historyRows = api.historyRows();
  report.documents = agentlsDocuments();
  report.steps.push("views");
}

async function activate() {
  const out = process.env.AGENTLS_E2E_REPORT;
  if (!out) return; // installed by hand outside the test: do nothing
  const report = { steps: [], error: null };
  try {
    await drive(report);
  } catch (error) {
    report.error = error && error.stack ? error.stack : String(error);
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, JSON.stringify(report, null, 2));
  fs.renameSync(`${out}.tmp`, out); // the test never reads a half-written report
}

module.exports = { activate, deactivate() {} };
