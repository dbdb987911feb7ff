/**
 * The extension's own commands (palette, context menus, views). Each one gathers what the user
 * chose (agent, task, selection or files), makes one server request, and shows the answer; none
 * holds agent logic. Server commands themselves are registered by the language client.
 *
 * "Run Agent…" also accepts an argument object (`{agent, task, dryRun, uri, range, files}`) so a
 * keybinding or another extension can run an agent without the pickers.
 */

import * as vscode from "vscode";
import { agentPicks } from "./agentsModel";
import type { ServerClient } from "./client";
import type { DocumentStore } from "./documents";
import { applyEdits, offerEdits } from "./edits";
import { offerHandoffs } from "./handoffs";
import { historyPicks } from "./historyModel";
import { errorMessage } from "./log";
import { renderMemorySnapshot, renderMetrics, renderPreview, renderRun } from "./outputDocument";
import {
  type AgentInfo,
  type AgentsListResult,
  Commands,
  type ContextPreviewResult,
  type Handoff,
  type HistoryListResult,
  isProfilingNotStarted,
  type MemorySnapshot,
  type RunArgs,
  type RunResult,
  type StatusResult,
} from "./protocol";
import type { RunController } from "./runs";
import type { AgentsView, HistoryView } from "./views";

/** What a caller may pass to "Run Agent…" to skip the pickers. */
export interface RunAgentOptions {
  agent?: string;
  task?: string;
  dryRun?: boolean;
  uri?: string;
  range?: RunArgs["range"];
  files?: string[];
  variables?: Record<string, string>;
}

/** What the editor offers as context: the selection, else the active file, else nothing. */
interface Attachment {
  uri?: string;
  range?: RunArgs["range"];
  files?: string[];
}

/** Rows in each list of a memory snapshot document. */
const MEMORY_ROWS = 50;

export interface CommandDeps {
  server: ServerClient;
  runs: RunController;
  documents: DocumentStore;
  agentsView: AgentsView;
  historyView: HistoryView;
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const { server, runs, documents, agentsView, historyView } = deps;

  const guarded =
    <A extends unknown[]>(fn: (...args: A) => Promise<unknown>) =>
    async (...args: A): Promise<unknown> => {
      try {
        return await fn(...args);
      } catch (error) {
        void vscode.window.showErrorMessage(`agentls: ${errorMessage(error)}`);
        return undefined;
      }
    };

  async function listAgents(): Promise<AgentInfo[]> {
    return (await server.execute<AgentsListResult>(Commands.agentsList, {})).agents;
  }

  async function pickAgent(placeHolder: string): Promise<string | undefined> {
    const agents = await listAgents();
    if (agents.length === 0) {
      void vscode.window.showInformationMessage(
        "agentls found no agents in this workspace. Add a Markdown file with YAML front matter under .agents/.",
      );
      return undefined;
    }
    const pick = await vscode.window.showQuickPick(agentPicks(agents), {
      placeHolder,
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (pick === undefined) {
      return undefined;
    }
    if (!pick.valid) {
      const agent = agents.find((a) => a.name === pick.agent);
      const choice = await vscode.window.showErrorMessage(
        `agentls: ${pick.agent} cannot run: ${pick.detail.replace(/^Invalid: /, "")}`,
        "Open Definition",
      );
      if (choice === "Open Definition" && agent !== undefined) {
        await vscode.window.showTextDocument(vscode.Uri.parse(agent.uri));
      }
      return undefined;
    }
    return pick.agent;
  }

  /** Asks for a task; `draft` fills the box (a handoff's prompt, to edit before running). */
  async function askTask(agent: string, draft?: string): Promise<string | undefined> {
    return vscode.window.showInputBox({
      title: `Run ${agent}`,
      prompt: "What should the agent do? The selection or the active file is attached.",
      placeHolder: "e.g. Review this change for bugs",
      ignoreFocusOut: true,
      ...(draft ? { value: draft } : {}),
    });
  }

  /** Asks for each Copilot `${input:name}` the agent needs and `given` lacks; undefined if cancelled. */
  async function askInputs(
    agent: string,
    given: Record<string, string>,
  ): Promise<Record<string, string> | undefined> {
    const info = (await listAgents()).find((a) => a.name === agent);
    const values = { ...given };
    for (const input of info?.inputs ?? []) {
      if (values[input.name] !== undefined) {
        continue;
      }
      const value = await vscode.window.showInputBox({
        title: `Run ${agent}: ${input.name}`,
        prompt: input.placeholder || `Value for \${input:${input.name}}`,
        ignoreFocusOut: true,
      });
      if (value === undefined) {
        return undefined;
      }
      values[input.name] = value;
    }
    return values;
  }

  function editorAttachment(selectionOnly: boolean): Attachment {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || editor.document.uri.scheme === "agentls") {
      return {};
    }
    const uri = editor.document.uri.toString();
    const sel = editor.selection;
    if (!sel.isEmpty) {
      return {
        uri,
        range: {
          start: { line: sel.start.line, character: sel.start.character },
          end: { line: sel.end.line, character: sel.end.character },
        },
      };
    }
    return selectionOnly ? {} : { uri };
  }

  /** The explorer passes (clicked, allSelected); several files are attached as `files`. */
  function explorerAttachment(clicked: vscode.Uri, all: unknown): Attachment {
    const uris = Array.isArray(all) && all.length > 0 ? (all as vscode.Uri[]) : [clicked];
    return { files: uris.map((u) => u.toString()) };
  }

  async function runAgent(options: RunAgentOptions, attachment: Attachment): Promise<RunResult | undefined> {
    const agent = options.agent ?? (await pickAgent("Run which agent?"));
    if (agent === undefined) {
      return undefined;
    }
    const task = options.task ?? (await askTask(agent));
    if (task === undefined) {
      return undefined;
    }
    const variables = await askInputs(agent, options.variables ?? {});
    if (variables === undefined) {
      return undefined;
    }
    const args: RunArgs = { agent, task, ...attachment };
    if (options.uri !== undefined) args.uri = options.uri;
    if (options.range !== undefined) args.range = options.range;
    if (options.files !== undefined) args.files = options.files;
    if (Object.keys(variables).length > 0) args.variables = variables;
    if (options.dryRun === true) args.dry_run = true;
    const result = await runs.run(args);
    historyView.refresh();
    if (result !== undefined) {
      // Edits first: a next step ("review the change") usually wants them settled.
      const edits = (result.edits ?? []).length > 0 ? offerEdits(server, result) : Promise.resolve();
      void edits
        .then(() => {
          historyView.refresh();
          return offerHandoffs(result, runnableAgents, runHandoff);
        })
        .catch((error: unknown) => vscode.window.showErrorMessage(`agentls: ${errorMessage(error)}`));
    }
    return result;
  }

  async function runnableAgents(): Promise<ReadonlySet<string>> {
    return new Set((await listAgents()).filter((a) => a.valid).map((a) => a.name));
  }

  /** A handoff chosen after a run: its agent, its prompt as the task (editable unless `send`). */
  async function runHandoff(handoff: Handoff): Promise<RunResult | undefined> {
    const send = handoff.send && handoff.prompt.trim() !== "";
    const task = send ? handoff.prompt : await askTask(handoff.agent, handoff.prompt);
    if (task === undefined) {
      return undefined;
    }
    return runAgent({ agent: handoff.agent, task }, editorAttachment(false));
  }

  async function openRun(id: string): Promise<void> {
    const live = runs.documentOf(id);
    if (live !== undefined && documents.has(live)) {
      await vscode.window.showTextDocument(live, { preview: false });
      return;
    }
    const record = await server.execute<RunResult>(Commands.historyGet, { id });
    await documents.show(
      documents.newUri(record.agent),
      renderRun({ agent: record.agent, task: record.task ?? "", id: record.id, result: record, streamed: "" }),
    );
  }

  return [
    // `{id, edits?, confirm?}`: apply a run's proposed edits (used by tests and keybindings; the
    // run's notification offers the same). Without `confirm: false`, VS Code's refactor preview
    // asks about each change first.
    vscode.commands.registerCommand(
      "agentls.applyEdits",
      guarded(async (arg?: { id?: string; edits?: string[]; confirm?: boolean }) => {
        if (typeof arg?.id !== "string") {
          throw new Error("agentls.applyEdits needs {id}: the run whose edits to apply.");
        }
        return applyEdits(server, arg.id, arg.edits, arg.confirm !== false);
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.runAgent",
      guarded(async (arg?: unknown, all?: unknown) => {
        if (arg instanceof vscode.Uri) {
          return runAgent({}, explorerAttachment(arg, all));
        }
        const options = (typeof arg === "object" && arg !== null ? arg : {}) as RunAgentOptions;
        return runAgent(options, editorAttachment(false));
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.runAgentOnSelection",
      guarded(async () => {
        const attachment = editorAttachment(true);
        if (attachment.range === undefined) {
          void vscode.window.showInformationMessage("agentls: select some text first.");
          return undefined;
        }
        return runAgent({}, attachment);
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.runThisAgent",
      guarded(async (row?: { name?: string }) => runAgent({ agent: row?.name }, editorAttachment(false))),
    ),
    vscode.commands.registerCommand(
      "agentls.previewContext",
      guarded(async (options?: RunAgentOptions) => {
        const agent = options?.agent ?? (await pickAgent("Preview the context of which agent?"));
        if (agent === undefined) {
          return undefined;
        }
        const task = options?.task ?? (await askTask(agent));
        if (task === undefined) {
          return undefined;
        }
        const preview = await server.execute<ContextPreviewResult>(Commands.contextPreview, {
          agent,
          task,
          ...editorAttachment(false),
        });
        await documents.show(documents.newUri(`${agent}-context`), renderPreview(agent, task, preview));
        return preview;
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.cancelRun",
      guarded(async (id?: unknown) => {
        let target = typeof id === "string" ? id : undefined;
        if (target === undefined) {
          const status = await server.execute<StatusResult>(Commands.status, {});
          const active = status.runs.filter((r) => r.status === "running" || r.status === "queued");
          if (active.length === 0) {
            void vscode.window.showInformationMessage("agentls: no run is in flight.");
            return false;
          }
          const pick =
            active.length === 1
              ? { id: active[0]?.id }
              : await vscode.window.showQuickPick(
                  active.map((r) => ({ label: r.agent, description: `${r.status} · ${r.output_chars} chars`, id: r.id })),
                  { placeHolder: "Cancel which run?" },
                );
          target = pick?.id;
        }
        if (target === undefined) {
          return false;
        }
        const cancelled = await runs.cancel(target);
        if (!cancelled) {
          void vscode.window.showInformationMessage("agentls: that run had already ended.");
        }
        return cancelled;
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.showHistory",
      guarded(async () => {
        const history = await server.execute<HistoryListResult>(Commands.historyList, { limit: 200 });
        if (history.runs.length === 0) {
          void vscode.window.showInformationMessage("agentls: no runs yet.");
          return undefined;
        }
        const pick = await vscode.window.showQuickPick(historyPicks(history.runs, Date.now()), {
          placeHolder: "Open the output of which run?",
          matchOnDescription: true,
          matchOnDetail: true,
        });
        if (pick !== undefined) {
          await openRun(pick.id);
        }
        return pick?.id;
      }),
    ),
    vscode.commands.registerCommand("agentls.openRun", guarded(openRun)),
    vscode.commands.registerCommand(
      "agentls.showMetrics",
      guarded(async () => {
        const metrics = await server.execute<Record<string, unknown>>(Commands.metrics, {});
        await documents.show(documents.newUri("metrics"), renderMetrics(metrics));
        return metrics;
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.showMemorySnapshot",
      guarded(async () => {
        const take = (): Promise<MemorySnapshot> =>
          server.execute<MemorySnapshot>(Commands.memoryProfile, { action: "snapshot", top: MEMORY_ROWS });
        let snapshot: MemorySnapshot;
        try {
          snapshot = await take();
        } catch (e) {
          if (!isProfilingNotStarted(e)) {
            throw e;
          }
          // The first use starts tracing; from then on each snapshot shows what changed.
          await server.execute(Commands.memoryProfile, { action: "start" });
          snapshot = await take();
        }
        await documents.show(documents.newUri("memory"), renderMemorySnapshot(snapshot));
        return snapshot;
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.stopMemoryProfiling",
      guarded(async () => {
        const stopped = await server.execute<{ stopped: boolean }>(Commands.memoryProfile, { action: "stop" });
        void vscode.window.showInformationMessage(
          stopped.stopped ? "agentls: memory profiling stopped." : "agentls: memory profiling was not running.",
        );
        return stopped;
      }),
    ),
    vscode.commands.registerCommand(
      "agentls.restartServer",
      guarded(() => server.restart("requested by the user")),
    ),
    vscode.commands.registerCommand(
      "agentls.refreshViews",
      guarded(async () => {
        await Promise.all([agentsView.reload(), historyView.reload()]);
      }),
    ),
  ];
}
