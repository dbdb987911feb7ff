/**
 * Entry point: builds the pieces, wires their events, and starts the server. No logic lives here.
 *
 * Restart triggers: the server command or data folder settings change (debounced), the Python
 * interpreter changes, or the workspace becomes trusted (the server then may run the backends the
 * workspace defines). Other `agentls.*` settings reach the running server without a restart.
 */

import * as vscode from "vscode";
import { ServerClient } from "./client";
import { registerCommands } from "./commands";
import { DocumentStore } from "./documents";
import { AGENT_FILES_GLOB } from "./locations";
import { log } from "./log";
import { onInterpreterChanged } from "./python";
import { RunController } from "./runs";
import { RESTART_SETTINGS } from "./settings";
import { AgentsView, HistoryView, RunsStatusItem } from "./views";

/** What `activate` returns: read-only views of the UI state, for other extensions and tests. */
export interface AgentlsApi {
  serverState(): string;
  runsInFlight(): number;
  agentRows(): readonly unknown[];
  historyRows(): readonly unknown[];
  refreshViews(): Promise<void>;
}

let activeServer: ServerClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<AgentlsApi> {
  const server = new ServerClient(context.extensionUri.fsPath);
  activeServer = server;
  const documents = new DocumentStore();
  const runs = new RunController(server, documents);
  const agentsView = new AgentsView(server);
  const historyView = new HistoryView(server, runs);
  const status = new RunsStatusItem(server, runs);

  const agentFiles = vscode.workspace.createFileSystemWatcher(AGENT_FILES_GLOB);
  context.subscriptions.push(
    log(),
    server,
    documents,
    runs,
    agentsView,
    historyView,
    status,
    agentFiles,
    vscode.window.registerTreeDataProvider("agentls.agents", agentsView),
    vscode.window.registerTreeDataProvider("agentls.history", historyView),
    ...registerCommands({ server, runs, documents, agentsView, historyView }),
    server.onDidChangeState((state) => {
      status.update();
      agentsView.refresh();
      historyView.refresh();
      log().info(`Server ${state}`);
    }),
    runs.onDidChangeLive(() => {
      status.update();
      historyView.relayout();
      historyView.refresh();
    }),
    agentFiles.onDidChange(() => agentsView.refresh()),
    agentFiles.onDidCreate(() => agentsView.refresh()),
    agentFiles.onDidDelete(() => agentsView.refresh()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (RESTART_SETTINGS.some((section) => event.affectsConfiguration(section))) {
        server.scheduleRestart("settings changed");
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => server.scheduleRestart("workspace trusted")),
    await onInterpreterChanged(() => server.scheduleRestart("Python interpreter changed")),
  );

  await server.start();
  return {
    serverState: () => server.state,
    runsInFlight: () => runs.liveRuns.length,
    agentRows: () => agentsView.current,
    historyRows: () => historyView.current,
    refreshViews: async () => {
      await Promise.all([agentsView.reload(), historyView.reload()]);
    },
  };
}

/** Waits for the server to exit, so no process outlives the window. */
export function deactivate(): Promise<void> | undefined {
  return activeServer?.stop();
}
