/**
 * Owns runs as the editor sees them: starting one (with work-done progress and a Cancel button),
 * streaming its output into its document, and knowing which runs are in flight.
 *
 * The server announces every run (`agentls/runStarted`), streams its output (`agentls/output`) and
 * says when it ends (`agentls/runFinished`). A run this window started is matched to its
 * announcement by agent and task, oldest request first; from then on its chunks go to its document.
 * The request's result is the final word: it replaces the streamed text when it arrives.
 */

import { randomUUID } from "node:crypto";
import * as vscode from "vscode";
import type { ServerClient } from "./client";
import type { DocumentStore } from "./documents";
import { oneLine } from "./format";
import type { LiveRun } from "./historyModel";
import { errorMessage, log } from "./log";
import { OutputAssembler, type RunView, renderRun } from "./outputDocument";
import {
  Commands,
  type OutputParams,
  type RunArgs,
  type RunFinishedParams,
  type RunResult,
  type RunStartedParams,
  type RunsCancelResult,
  type ToolCallParams,
} from "./protocol";

/** Runs of this window remembered by id (to reopen their live document); older ones are forgotten. */
const MAX_TRACKED = 100;

interface TrackedRun {
  view: RunView;
  uri: vscode.Uri;
  output: OutputAssembler;
}

export class RunController implements vscode.Disposable {
  /** Runs this window asked for whose announcement has not arrived yet, oldest first. */
  private readonly unmatched: TrackedRun[] = [];
  /** Runs of this window by server id. */
  private readonly tracked = new Map<string, TrackedRun>();
  /** Every run in flight on the server, whoever started it. */
  private readonly live = new Map<string, LiveRun>();
  private readonly liveChanged = new vscode.EventEmitter<void>();
  private readonly disposables: vscode.Disposable[];

  /** Fires when a run starts or ends; the status bar and History view listen. */
  readonly onDidChangeLive = this.liveChanged.event;

  constructor(
    private readonly server: ServerClient,
    private readonly documents: DocumentStore,
  ) {
    this.disposables = [
      server.onRunStarted((p) => this.started(p)),
      server.onOutput((p) => this.output(p)),
      server.onToolCall((p) => this.toolCall(p)),
      server.onRunFinished((p) => this.finished(p)),
      server.onDidChangeState((state) => {
        if (state !== "running" && this.live.size > 0) {
          this.live.clear(); // a stopped server has no runs
          this.liveChanged.fire();
        }
      }),
    ];
  }

  /** Runs in flight, newest first. */
  get liveRuns(): LiveRun[] {
    return [...this.live.values()].sort((a, b) => b.startedAt - a.startedAt);
  }

  /** The document of a run this window started, if it is still known. */
  documentOf(id: string): vscode.Uri | undefined {
    return this.tracked.get(id)?.uri;
  }

  /**
   * Runs an agent: opens its document, streams output into it, shows progress with a Cancel
   * button, and returns the result (undefined when the request itself failed; the document says why).
   */
  async run(args: RunArgs): Promise<RunResult | undefined> {
    const run: TrackedRun = {
      view: { agent: args.agent, task: args.task, streamed: "" },
      uri: this.documents.newUri(args.dry_run ? `${args.agent}-dry-run` : args.agent),
      output: new OutputAssembler(),
    };
    this.unmatched.push(run);
    await this.documents.show(run.uri, renderRun(run.view), true);
    const title = `agentls: ${args.dry_run ? "dry run of " : ""}${args.agent}`;
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        (progress, cancel) => this.request(run, args, progress, cancel),
      );
    } finally {
      const at = this.unmatched.indexOf(run);
      if (at >= 0) {
        this.unmatched.splice(at, 1);
      }
    }
  }

  /** Cancels a run by id; returns whether the server had it to cancel. */
  async cancel(id: string): Promise<boolean> {
    const result = await this.server.execute<RunsCancelResult>(Commands.runsCancel, { id });
    return result.cancelled;
  }

  dispose(): void {
    for (const d of this.disposables) {
      d.dispose();
    }
    this.liveChanged.dispose();
  }

  private async request(
    run: TrackedRun,
    args: RunArgs,
    progress: vscode.Progress<{ message?: string }>,
    cancel: vscode.CancellationToken,
  ): Promise<RunResult | undefined> {
    const token = randomUUID();
    const reports = this.server.onProgress(token, (report) => {
      if (report.message) {
        progress.report({ message: oneLine(report.message.split("\n").slice(-2).join(" "), 80) });
      }
    });
    const onCancel = cancel.onCancellationRequested(() => {
      // The progress token is the protocol's cancel path; the id, when known, is a second one
      // that also works if the server never linked the token.
      void this.server.cancelProgress(token).catch(() => undefined);
      if (run.view.id !== undefined) {
        void this.cancel(run.view.id).catch(() => undefined);
      }
    });
    try {
      const result = await this.server.execute<RunResult>(Commands.run, args, undefined, token);
      run.view.result = { task: args.task, ...result };
      if (!this.tracked.has(result.id)) {
        this.tracked.set(result.id, run);
        run.view.id = result.id;
      }
      return result;
    } catch (error) {
      run.view.requestError = errorMessage(error);
      log().error(`Run of ${args.agent} failed: ${run.view.requestError}`);
      void vscode.window.showErrorMessage(`agentls: ${args.agent}: ${run.view.requestError}`);
      return undefined;
    } finally {
      reports.dispose();
      onCancel.dispose();
      this.documents.set(run.uri, renderRun(run.view));
      run.output = new OutputAssembler(); // the result holds the text now
      while (this.tracked.size > MAX_TRACKED) {
        const oldest = this.tracked.keys().next().value;
        if (oldest === undefined) {
          break;
        }
        this.tracked.delete(oldest);
      }
    }
  }

  private started(p: RunStartedParams): void {
    this.live.set(p.id, { id: p.id, agent: p.agent, task: p.task, startedAt: Date.now() / 1000 });
    if (p.parent !== undefined) {
      // A recipe's step is never a run this window asked for; it is a line in its recipe's document.
      const recipe = this.tracked.get(p.parent);
      if (recipe !== undefined && recipe.view.result === undefined) {
        recipe.view.steps ??= new Map();
        const item = p.item ?? undefined;
        recipe.view.steps.set(p.id, { id: p.step ?? p.agent, agent: p.agent, status: "running", item });
        this.documents.set(recipe.uri, renderRun(recipe.view));
      }
      this.liveChanged.fire();
      return;
    }
    const at = this.unmatched.findIndex((r) => r.view.agent === p.agent && r.view.task === p.task);
    if (at >= 0) {
      const [run] = this.unmatched.splice(at, 1);
      if (run !== undefined) {
        run.view.id = p.id;
        this.tracked.set(p.id, run);
      }
    }
    this.liveChanged.fire();
  }

  private output(p: OutputParams): void {
    const run = this.tracked.get(p.id);
    if (run === undefined || run.view.result !== undefined) {
      return;
    }
    if (run.output.add(p.seq, p.text)) {
      run.view.streamed = run.output.text;
      this.documents.set(run.uri, renderRun(run.view));
    }
  }

  private toolCall(p: ToolCallParams): void {
    const run = this.tracked.get(p.id);
    if (run === undefined || run.view.result !== undefined) {
      return;
    }
    run.view.tools ??= new Map();
    run.view.tools.set(p.call_id, { tool: p.tool, status: p.status, summary: p.summary });
    this.documents.set(run.uri, renderRun(run.view));
  }

  private finished(p: RunFinishedParams): void {
    const recipe = p.parent !== undefined ? this.tracked.get(p.parent) : undefined;
    const step = recipe?.view.steps?.get(p.id);
    if (recipe !== undefined && step !== undefined && recipe.view.result === undefined) {
      step.status = p.status;
      this.documents.set(recipe.uri, renderRun(recipe.view));
    }
    if (this.live.delete(p.id)) {
      this.liveChanged.fire();
    }
  }
}
