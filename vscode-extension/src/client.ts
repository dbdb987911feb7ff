/**
 * Owns the language client: starting the server over stdio, restarting it (debounced, one at a
 * time), and relaying its requests and run notifications to the rest of the extension.
 *
 * Everything else talks to the server through `ServerClient.execute`, and hears about runs through
 * its events, which outlive restarts. When the server cannot start, the user gets one message naming
 * the command that failed, with a button that opens the `agentls.server.command` setting; the
 * language client's own generic pop-ups are turned off so they do not pile up on top of it.
 */

import * as vscode from "vscode";
import {
  CloseAction,
  type CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  type ErrorHandlerResult,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  type WorkDoneProgressReport,
} from "vscode-languageclient/node";
import { type ListedAgent, withTask } from "./askTask";
import { errorMessage, log } from "./log";
import {
  Notifications,
  type OutputParams,
  type ToolCallParams,
  type RunFinishedParams,
  type RunStartedParams,
} from "./protocol";
import { selectedInterpreter } from "./python";
import { ServerProcess } from "./serverProcess";
import { showStartFailure } from "./startFailure";
import {
  type ServerCommand,
  describeCommand,
  serverCommand,
  startFailureMessage,
  toInitializationOptions,
  toServerSettings,
} from "./settings";

/** Wait this long after the last relevant change before restarting, so a burst restarts once. */
const RESTART_DELAY_MS = 1000;
/** A server that dies more often than this within three minutes is left stopped. */
const MAX_CRASHES = 3;


export type ServerState = "stopped" | "starting" | "running" | "failed";

/** Reads the `agentls` section for a folder (or the window), as settings.ts expects. */
function reader(scope?: vscode.Uri): (key: string) => unknown {
  const config = vscode.workspace.getConfiguration("agentls", scope);
  return (key) => config.get(key);
}

/** A language client that leaves error pop-ups to `ServerClient`, which shows one clear message. */
class QuietLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown, _showNotification?: boolean | "force"): void {
    super.error(message, data, false);
  }
}

export class ServerClient implements vscode.Disposable {
  private client: QuietLanguageClient | undefined;
  /** Restarts run one after another through this chain, never interleaved. */
  private queue: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | undefined;
  private crashTimes: number[] = [];
  private clientDisposables: vscode.Disposable[] = [];
  private currentState: ServerState = "stopped";
  /** The server process of the current client, killed if it outlives a stop. */
  private readonly process: ServerProcess;

  /** @param neutralDir Where the server process starts: the extension's folder, never the workspace. */
  constructor(neutralDir: string) {
    this.process = new ServerProcess(neutralDir);
  }

  private readonly stateEmitter = new vscode.EventEmitter<ServerState>();
  private readonly runStartedEmitter = new vscode.EventEmitter<RunStartedParams>();
  private readonly outputEmitter = new vscode.EventEmitter<OutputParams>();
  private readonly toolCallEmitter = new vscode.EventEmitter<ToolCallParams>();
  private readonly runFinishedEmitter = new vscode.EventEmitter<RunFinishedParams>();

  /** Fires when the server starts, stops or fails; views refresh on "running". */
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onRunStarted = this.runStartedEmitter.event;
  readonly onOutput = this.outputEmitter.event;
  /** A tool call of a run started or ended (`agentls/toolCall`). */
  readonly onToolCall = this.toolCallEmitter.event;
  readonly onRunFinished = this.runFinishedEmitter.event;

  get state(): ServerState {
    return this.currentState;
  }

  /** Starts the server (after any restart in progress). */
  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  /** Stops the server (after any restart in progress); resolves when the process is gone. */
  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  /** Stops then starts the server now; also what the "Restart Server" command does. */
  restart(reason: string): Promise<void> {
    log().info(`Restarting the server: ${reason}`);
    return this.enqueue(async () => {
      await this.doStop();
      await this.doStart();
    });
  }

  /** Restarts after a quiet period, so several setting changes in a row restart once. */
  scheduleRestart(reason: string): void {
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart(reason);
    }, RESTART_DELAY_MS);
  }

  /** Tells the running server its settings changed (it re-reads them; no restart). */
  async notifySettingsChanged(): Promise<void> {
    if (this.client?.state === State.Running) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { agentls: toServerSettings(reader()) },
      });
    }
  }

  /**
   * Runs a server command and returns its result.
   *
   * @param workDoneToken Lets the server report progress for this request (see `onProgress`).
   * @throws Error with a user-facing message when the server is not running or answers with an error.
   */
  async execute<T>(
    command: string,
    args: object,
    token?: vscode.CancellationToken,
    workDoneToken?: string,
  ): Promise<T> {
    const client = this.client;
    if (client === undefined || client.state !== State.Running) {
      throw new Error("The agentls server is not running. Use “agentls: Restart Server”, or check its output.");
    }
    const params = {
      command,
      arguments: [args],
      ...(workDoneToken !== undefined ? { workDoneToken } : {}),
    };
    return (await client.sendRequest(ExecuteCommandRequest.type, params, token)) as T;
  }

  /** Listens to work-done progress reports on a token this extension created. */
  onProgress(token: string, listener: (report: WorkDoneProgressReport) => void): vscode.Disposable {
    const client = this.client;
    if (client === undefined) {
      return new vscode.Disposable(() => undefined);
    }
    return client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "report") {
        listener(value);
      }
    });
  }

  /** Asks the server to cancel the work behind a progress token (the notification's Cancel button). */
  async cancelProgress(token: string): Promise<void> {
    await this.client?.sendNotification(WorkDoneProgressCancelNotification.type, { token });
  }

  dispose(): void {
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
    }
    void this.enqueue(() => this.doStop());
    this.stateEmitter.dispose();
    this.runStartedEmitter.dispose();
    this.outputEmitter.dispose();
    this.toolCallEmitter.dispose();
    this.runFinishedEmitter.dispose();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step, step);
    return this.queue;
  }

  private setState(state: ServerState): void {
    if (state !== this.currentState) {
      this.currentState = state;
      this.stateEmitter.fire(state);
    }
  }

  private async doStart(): Promise<void> {
    let cmd: ServerCommand;
    try {
      const setting = vscode.workspace.getConfiguration("agentls").get<unknown>("server.command");
      const hasSetting = Array.isArray(setting) && setting.length > 0;
      cmd = serverCommand(setting, hasSetting ? undefined : await selectedInterpreter(), process.platform);
    } catch (error) {
      this.setState("failed");
      void showStartFailure(errorMessage(error));
      return;
    }
    log().info(`Starting the server: ${describeCommand(cmd)} (${cmd.origin})`);
    const client = this.createClient(cmd);
    this.client = client;
    this.setState("starting");
    let failure: string | undefined;
    try {
      await client.start();
      if (client.state !== State.Running) {
        failure = "it exited during start-up";
      }
    } catch (error) {
      failure = errorMessage(error);
    }
    if (failure === undefined) {
      this.crashTimes = [];
      this.setState("running");
      this.clientDisposables.push(
        client.onDidChangeState((e) => {
          if (e.newState === State.Running) {
            this.setState("running");
          } else if (e.newState === State.Starting && this.currentState === "running") {
            this.setState("starting"); // restarting after a crash
          }
        }),
      );
      return;
    }
    log().error(`The server did not start: ${failure}`);
    await this.doStop(); // waits for the process to close, so its stderr is complete
    const message = startFailureMessage(cmd, this.process.stderrTail, failure);
    this.setState("failed");
    void showStartFailure(message);
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.disposeClientListeners();
    if (client !== undefined && client.state !== State.Stopped) {
      try {
        await client.stop(3000);
      } catch (error) {
        log().warn(`The server did not stop cleanly: ${errorMessage(error)}`);
      }
    }
    await client?.dispose().catch(() => undefined);
    await this.process.end();
    if (this.currentState !== "failed") {
      this.setState("stopped");
    }
  }

  private disposeClientListeners(): void {
    for (const d of this.clientDisposables) {
      d.dispose();
    }
    this.clientDisposables = [];
  }

  private createClient(cmd: ServerCommand): QuietLanguageClient {
    // The process is spawned here, not by the language client, to keep the end of its stderr
    // (the reason a start failed, e.g. "No module named agentls") and to kill it if it hangs.
    const serverOptions: ServerOptions = () => this.process.spawn(cmd);
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      initializationOptions: toInitializationOptions(reader(), vscode.workspace.isTrusted),
      outputChannel: log(),
      synchronize: { configurationSection: "agentls" },
      errorHandler: {
        error: (): ErrorHandlerResult => ({ action: ErrorAction.Continue, handled: true }),
        closed: (): CloseHandlerResult => this.onServerClosed(),
      },
      initializationFailedHandler: () => false,
      middleware: {
        // "Ask <agent>" code actions and "▶ Run" lenses of agents without a default task ask for
        // one here (the server would run them on an empty task); the agent list is the server's.
        executeCommand: async (command, args, next): Promise<unknown> => {
          if (command !== "agentls.ask") {
            return (await next(command, args)) as unknown;
          }
          const listAgents = async (): Promise<ListedAgent[]> => {
            const listed = (await next("agentls.agents.list", [{}])) as { agents?: ListedAgent[] };
            return listed?.agents ?? [];
          };
          const sent = await withTask(
            args,
            listAgents,
            (agent) =>
              vscode.window.showInputBox({
                title: `Ask ${agent}`,
                prompt: "What should the agent do? The selection or the active file is attached.",
                ignoreFocusOut: true,
              }),
            (agent, name, placeholder) =>
              vscode.window.showInputBox({
                title: `Ask ${agent}: ${name}`,
                prompt: placeholder || `Value for \${input:${name}}`,
                ignoreFocusOut: true,
              }),
          );
          return sent === undefined ? undefined : ((await next(command, sent)) as unknown);
        },
        workspace: {
          // The server asks for the "agentls" section; it gets the mapped settings, never the raw
          // VS Code object (which holds extension-only keys and unset nulls).
          configuration: (params, token, next) => {
            if (params.items.every((item) => item.section !== "agentls")) {
              return next(params, token);
            }
            return params.items.map((item) =>
              item.section === "agentls"
                ? toServerSettings(reader(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined))
                : null,
            );
          },
          didChangeConfiguration: () => this.notifySettingsChanged(),
        },
      },
    };
    const client = new QuietLanguageClient("agentls", "agentls", serverOptions, clientOptions);
    this.clientDisposables.push(
      client.onNotification(Notifications.runStarted, (p: RunStartedParams) => this.runStartedEmitter.fire(p)),
      client.onNotification(Notifications.output, (p: OutputParams) => this.outputEmitter.fire(p)),
      client.onNotification(Notifications.toolCall, (p: ToolCallParams) => this.toolCallEmitter.fire(p)),
      client.onNotification(Notifications.runFinished, (p: RunFinishedParams) => this.runFinishedEmitter.fire(p)),
    );
    return client;
  }

  private onServerClosed(): CloseHandlerResult {
    const now = Date.now();
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < 180_000), now];
    if (this.currentState !== "running") {
      // Closed while starting: doStart reports it, with the command that failed.
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    if (this.crashTimes.length > MAX_CRASHES) {
      this.setState("failed");
      void vscode.window
        .showErrorMessage(
          "The agentls server stopped unexpectedly several times and was not restarted. Its output has the details.",
          "Show Output",
          "Restart Server",
        )
        .then((choice) => {
          if (choice === "Show Output") {
            log().show();
          } else if (choice === "Restart Server") {
            void this.restart("requested after crashes");
          }
        });
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    log().warn("The server stopped unexpectedly; restarting it.");
    return { action: CloseAction.Restart, handled: true };
  }
}
