/**
 * The server's protocol as the extension sees it: command names, notification names and the shapes
 * of their payloads. It mirrors docs/protocol.md one to one; nothing here talks to the server.
 *
 * Every server feature is a `workspace/executeCommand` with one object argument, so any LSP client
 * can call it; the extension adds only UI around these calls.
 */

/** `workspace/executeCommand` names the server answers. */
export const Commands = {
  agentsList: "agentls.agents.list",
  run: "agentls.run",
  contextPreview: "agentls.context.preview",
  runsCancel: "agentls.runs.cancel",
  status: "agentls.status",
  historyList: "agentls.history.list",
  historyGet: "agentls.history.get",
  metrics: "agentls.metrics",
  cacheClear: "agentls.cache.clear",
  editsApply: "agentls.edits.apply",
  editsDiscard: "agentls.edits.discard",
  memoryProfile: "agentls.memory.profile",
} as const;

/** Notifications the server sends about every run, whoever started it. */
export const Notifications = {
  runStarted: "agentls/runStarted",
  output: "agentls/output",
  runFinished: "agentls/runFinished",
  toolCall: "agentls/toolCall",
} as const;

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/**
 * A next step an agent offers after a run (Copilot's `handoffs` front matter): a button `label`
 * that runs `agent` with `prompt` as its task, at once when `send`, else after the user edited it.
 */
export interface Handoff {
  label: string;
  agent: string;
  prompt: string;
  send: boolean;
}

/** A problem in an agent definition; older servers send plain strings. */
export type AgentProblem = string | { message: string; line?: number; column?: number; severity?: string };

export interface AgentInfo {
  name: string;
  description: string;
  backend: string | null;
  /** The model a run asks for; `model_source` says where it came from. */
  model: string | null;
  /** The `model` the file gives, as written. */
  model_requested?: string | null;
  model_source?: "agent" | "alias" | "backend" | null;
  tools?: string[];
  tool_groups?: string[];
  /** Copilot `${input:name}` variables the agent needs; a run must pass each in `variables`. */
  inputs?: { name: string; placeholder: string }[];
  /** Next steps offered after a run; older servers leave it out. */
  handoffs?: Handoff[];
  format?: string;
  /** `recipe` for a definition with `steps:` (it runs its steps' agents); `agent` otherwise. */
  kind?: "agent" | "recipe";
  /** A recipe's steps as written. */
  steps?: { id: string; agent: string; needs: string[]; for_each: string | null }[];
  /** Workspace-relative path of the definition file. */
  source: string;
  /** File URI of the definition file. */
  uri: string;
  valid: boolean;
  problems: AgentProblem[];
}

export interface AgentsListResult {
  agents: AgentInfo[];
}

export interface RunArgs {
  agent: string;
  task: string;
  uri?: string;
  range?: Range;
  files?: string[];
  variables?: Record<string, string>;
  dry_run?: boolean;
}

/** A secret the server redacted: where it was and what kind (never its value). */
export interface SecretFinding {
  line: number;
  kind: string;
}

export interface ManifestEntry {
  path: string;
  source: string;
  status: string;
  reason: string | null;
  bytes: number;
  size: number;
  tokens: number;
  secrets?: SecretFinding[];
}

export interface Usage {
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
}

export type ToolCallStatus = "started" | "succeeded" | "refused" | "failed";

/** One entry of a run's `tool_calls`. */
export interface ToolCallTrace {
  call_id: string;
  tool: string;
  arguments?: unknown;
  status: ToolCallStatus;
  summary: string;
  duration_ms?: number;
}

/** An edit the model proposed; the server never writes it. */
export interface ProposedEdit {
  id: string;
  path: string;
  uri: string;
  range: Range;
  old_text: string;
  new_text: string;
  diff: string;
  base: string;
  create?: boolean;
  state: "proposed" | "applied" | "discarded";
}

/** The result of `agentls.run`, and the full record `agentls.history.get` returns. */
export interface RunResult {
  id: string;
  agent: string;
  task?: string;
  status: RunStatus;
  output: string;
  error?: string | null;
  duration_ms: number;
  started_at?: number;
  backend?: string | null;
  model?: string | null;
  usage?: Usage | null;
  manifest: ManifestEntry[];
  /** Secrets removed from `output` before it was recorded. */
  output_secrets?: SecretFinding[];
  /** Dry runs only: the exact prompt a real run would send. */
  prompt?: string;
  turns?: number;
  tool_calls?: ToolCallTrace[];
  edits?: ProposedEdit[];
  notes?: string[];
  /** The recipe run this run is a step of. */
  parent?: string | null;
  /** A recipe's steps (each step, each file of a `for_each`), in order; absent for an agent's run. */
  steps?: RecipeStepResult[] | null;
  /** The agent's next steps (run results only, not history); older servers leave it out. */
  handoffs?: Handoff[];
  /** Set on dry runs. */
  dry_run?: boolean;
}

/** One step of a recipe run (one file of a `for_each` step). */
export interface RecipeStepResult {
  id: string;
  agent: string;
  run_id: string | null;
  /** A run status, `skipped`, or `pending`/`running` while the recipe runs. */
  status: string;
  item?: string;
  index?: number;
  error?: string;
}

/** `agentls.edits.apply` arguments. */
export interface EditsApplyArgs {
  id: string;
  /** Edit ids to apply; default: every edit still proposed. */
  edits?: string[];
  /**
   * Whether the editor asks the user to confirm each change (default true): VS Code's refactor
   * preview, where such changes start unticked. False applies at once.
   */
  confirm?: boolean;
}

export interface EditsApplyResult {
  applied: boolean;
  edits: string[];
  failure_reason?: string;
}

export interface EditsDiscardResult {
  discarded: number;
}

export interface ToolCallParams {
  id: string;
  call_id: string;
  tool: string;
  status: ToolCallStatus;
  summary: string;
}

export interface ContextPreviewResult {
  prompt: string;
  manifest: ManifestEntry[];
}

export interface RunsCancelResult {
  cancelled: boolean;
}

export interface RunSummary {
  id: string;
  agent: string;
  task: string;
  status: RunStatus;
  started_at: number;
  duration_ms: number;
  error: string | null;
  output_preview: string;
}

export interface HistoryListResult {
  runs: RunSummary[];
}

export interface ActiveRun {
  id: string;
  agent: string;
  status: RunStatus;
  submitted_at: number;
  output_chars: number;
}

export interface StatusResult {
  runs: ActiveRun[];
  index: { state: string; files: number; bytes: number; excluded: number; folders: number };
  trusted: boolean;
}

export interface RunStartedParams {
  id: string;
  agent: string;
  task: string;
  /** A recipe's step: the recipe run's id, the step id and the `for_each` file. */
  parent?: string;
  step?: string;
  item?: string | null;
  /** `recipe` for a recipe's own announcement. */
  kind?: "recipe";
}

export interface OutputParams {
  id: string;
  seq: number;
  text: string;
}

export interface RunFinishedParams {
  id: string;
  agent: string;
  status: RunStatus;
  parent?: string;
  step?: string;
  item?: string | null;
  kind?: "recipe";
}

/** `agentls.memory.profile` arguments: start tracing, take a snapshot, or stop. */
export interface MemoryProfileArgs {
  action: "start" | "snapshot" | "stop";
  /** Rows in each list of a snapshot, 1 to 200 (default 20). */
  top?: number;
}

export interface MemorySite {
  file: string;
  line: number;
  /** Bytes traced at this site now. */
  size: number;
  /** Blocks traced at this site now. */
  count: number;
}

export interface MemorySiteChange extends MemorySite {
  size_diff: number;
  count_diff: number;
}

export interface MemoryTypeCount {
  type: string;
  count: number;
  /** Shallow bytes (`sys.getsizeof`) of those objects. */
  size: number;
}

/** The result of `agentls.memory.profile {action: "snapshot"}`. */
export interface MemorySnapshot {
  tracing: boolean;
  snapshot: number;
  /** `"start"` or `"snapshot N"`: what `diff` is relative to. */
  compared_with: string;
  traced_bytes: number;
  peak_traced_bytes: number;
  tracemalloc_bytes: number;
  top: MemorySite[];
  diff: MemorySiteChange[];
  types: MemoryTypeCount[];
}

/** The error code of a snapshot asked for while profiling is off (LSP RequestFailed). */
export const PROFILING_NOT_STARTED_CODE = -32803;

/** Whether a failed `agentls.memory.profile` snapshot means "not started" (so start, then retry). */
export function isProfilingNotStarted(error: unknown): boolean {
  if (error === null || typeof error !== "object") {
    return false;
  }
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === PROFILING_NOT_STARTED_CODE && typeof message === "string" && message.includes("not started");
}
