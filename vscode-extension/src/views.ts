/**
 * The Agents and History views of the activity-bar container, and the status-bar item.
 *
 * The views hold no state of their own beyond the last answer from the server: they ask the server
 * (`agentls.agents.list`, `agentls.history.list`) on refresh, and the rows come from the pure
 * models in agentsModel.ts and historyModel.ts. Refreshes are debounced because several runs may
 * end together.
 */

import * as vscode from "vscode";
import { type AgentRow, agentRows } from "./agentsModel";
import type { ServerClient } from "./client";
import { type HistoryRow, historyRows } from "./historyModel";
import { errorMessage, log } from "./log";
import { type AgentInfo, type AgentsListResult, Commands, type HistoryListResult, type RunSummary } from "./protocol";
import type { RunController } from "./runs";

const REFRESH_DELAY_MS = 200;
/** How many past runs the History view lists. */
const HISTORY_LIMIT = 100;

/** A tree view whose rows come from one server request, refreshed on demand (debounced). */
abstract class ServerView<Row> implements vscode.TreeDataProvider<Row>, vscode.Disposable {
  protected rows: Row[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(protected readonly server: ServerClient) {}

  /** Asks the server again after a short pause; several calls in a row refresh once. */
  refresh(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, REFRESH_DELAY_MS);
  }

  /** Reloads now; resolves when the view has the new rows. */
  async reload(): Promise<void> {
    if (this.server.state !== "running") {
      this.rows = [];
    } else {
      try {
        this.rows = await this.load();
      } catch (error) {
        log().warn(`Could not refresh a view: ${errorMessage(error)}`);
      }
    }
    this.changed.fire();
  }

  /** The rows the view shows now (what the user sees). */
  get current(): readonly Row[] {
    return this.rows;
  }

  getChildren(element?: Row): Row[] {
    return element === undefined ? this.rows : [];
  }

  abstract getTreeItem(row: Row): vscode.TreeItem;
  protected abstract load(): Promise<Row[]>;

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.changed.dispose();
  }
}

/** The Agents view: every agent, invalid ones marked; a click opens the definition file. */
export class AgentsView extends ServerView<AgentRow> {
  private agents: AgentInfo[] = [];

  /** The agents of the last refresh, for pickers that want them without another request. */
  get lastAgents(): readonly AgentInfo[] {
    return this.agents;
  }

  protected async load(): Promise<AgentRow[]> {
    const result = await this.server.execute<AgentsListResult>(Commands.agentsList, {});
    this.agents = result.agents;
    return agentRows(result.agents);
  }

  getTreeItem(row: AgentRow): vscode.TreeItem {
    const item = new vscode.TreeItem(row.label, vscode.TreeItemCollapsibleState.None);
    item.description = row.description;
    item.tooltip = row.tooltip;
    item.contextValue = row.contextValue;
    item.iconPath = new vscode.ThemeIcon(
      row.icon,
      row.valid ? undefined : new vscode.ThemeColor("problemsWarningIcon.foreground"),
    );
    item.command = { command: "vscode.open", title: "Open Definition", arguments: [vscode.Uri.parse(row.uri)] };
    return item;
  }
}

/** The History view: runs in flight, then past runs; a click opens the run's output. */
export class HistoryView extends ServerView<HistoryRow> {
  private runs: RunSummary[] = [];

  constructor(
    server: ServerClient,
    private readonly runsInFlight: RunController,
  ) {
    super(server);
  }

  protected async load(): Promise<HistoryRow[]> {
    const result = await this.server.execute<HistoryListResult>(Commands.historyList, { limit: HISTORY_LIMIT });
    this.runs = result.runs;
    return historyRows(this.runsInFlight.liveRuns, this.runs, Date.now());
  }

  /** Re-lays rows from the last answer plus the runs in flight, without asking the server. */
  relayout(): void {
    this.rows = historyRows(this.runsInFlight.liveRuns, this.runs, Date.now());
  }

  getTreeItem(row: HistoryRow): vscode.TreeItem {
    const item = new vscode.TreeItem(row.label, vscode.TreeItemCollapsibleState.None);
    item.id = row.id;
    item.description = row.description;
    item.tooltip = row.tooltip;
    item.iconPath = new vscode.ThemeIcon(row.icon, row.color ? new vscode.ThemeColor(row.color) : undefined);
    item.command = { command: "agentls.openRun", title: "Open Run Output", arguments: [row.id] };
    return item;
  }
}

/** The status-bar item: how many runs are in flight, or that the server is not running. */
export class RunsStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("agentls.runs", vscode.StatusBarAlignment.Left, 10);

  constructor(
    private readonly server: ServerClient,
    private readonly runs: RunController,
  ) {
    this.item.name = "agentls runs";
    this.update();
    this.item.show();
  }

  update(): void {
    const count = this.runs.liveRuns.length;
    void vscode.commands.executeCommand("setContext", "agentls.runsInFlight", count > 0);
    if (this.server.state === "failed") {
      this.item.text = "$(error) agentls";
      this.item.tooltip = "The agentls server is not running. Click to restart it.";
      this.item.command = "agentls.restartServer";
    } else if (this.server.state !== "running") {
      this.item.text = "$(loading~spin) agentls";
      this.item.tooltip = "The agentls server is starting.";
      this.item.command = undefined;
    } else if (count > 0) {
      this.item.text = `$(sync~spin) agentls: ${count} ${count === 1 ? "run" : "runs"}`;
      this.item.tooltip = `${this.runs.liveRuns.map((r) => r.agent).join(", ")}. Click to cancel one.`;
      this.item.command = "agentls.cancelRun";
    } else {
      this.item.text = "$(hubot) agentls";
      this.item.tooltip = "No agent runs in flight. Click to run an agent.";
      this.item.command = "agentls.runAgent";
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}
