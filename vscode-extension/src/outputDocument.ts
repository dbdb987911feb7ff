/**
 * The Markdown documents a user reads: a run's output (streamed, then final), a context preview,
 * the metrics and a memory snapshot. Pure: it assembles text from protocol values and never imports `vscode`.
 *
 * Streaming: the server numbers output chunks from 0 (`agentls/output` `seq`). Chunks are kept by
 * number and only the unbroken prefix is shown, so a late or repeated chunk can never garble the
 * text. When the run's result arrives its `output` replaces the streamed text: the result is the
 * server's record of the run and wins over whatever the notifications delivered.
 */

import {
  fenced,
  formatDuration,
  formatTimestamp,
  statusLabel,
  tableCell,
} from "./format";
import type {
  ContextPreviewResult,
  ManifestEntry,
  MemorySite,
  MemorySnapshot,
  ProposedEdit,
  RecipeStepResult,
  RunResult,
  ToolCallTrace,
} from "./protocol";

/** Output chunks of one run, in `seq` order. */
export class OutputAssembler {
  private readonly pending = new Map<number, string>();
  private readonly parts: string[] = [];
  private next = 0;

  /** Adds a chunk; returns whether the visible text grew. Duplicates and stale chunks are ignored. */
  add(seq: number, text: string): boolean {
    if (!Number.isInteger(seq) || seq < this.next || this.pending.has(seq)) {
      return false;
    }
    this.pending.set(seq, text);
    let grew = false;
    for (let chunk = this.pending.get(this.next); chunk !== undefined; chunk = this.pending.get(this.next)) {
      this.pending.delete(this.next);
      this.parts.push(chunk);
      this.next += 1;
      grew = true;
    }
    return grew;
  }

  /** The text of every chunk up to the first one still missing. */
  get text(): string {
    return this.parts.join("");
  }

  /** How many chunks arrived ahead of a gap (a sign of lost notifications). */
  get waiting(): number {
    return this.pending.size;
  }
}

/** What the document of one run shows at a moment: before, during or after the run. */
export interface RunView {
  agent: string;
  task: string;
  /** Known once the server announces the run. */
  id?: string;
  /** Set when the run ended; until then the document says it is running. */
  result?: RunResult;
  /** Streamed output so far (ignored once `result` is set). */
  streamed: string;
  /** Shown instead of a result when the request itself failed (server gone, bad arguments). */
  requestError?: string;
  /** Tool calls announced so far (`agentls/toolCall`), by call id, in the order they started. */
  tools?: Map<string, Pick<ToolCallTrace, "tool" | "status" | "summary">>;
  /** A recipe's steps announced so far (`agentls/runStarted` with `parent`), by their run id. */
  steps?: Map<string, Pick<RecipeStepResult, "id" | "agent" | "status" | "item">>;
}

/** The Markdown of a run's document. */
export function renderRun(view: RunView): string {
  const result = view.result;
  const state = result
    ? statusLabel(result.status)
    : view.requestError !== undefined
      ? "Not run"
      : "Running…";
  const lines: string[] = [`# ${view.agent}: ${state}`, "", `**Task:** ${view.task || "(none)"}`, ""];
  if (view.requestError !== undefined) {
    lines.push(`> **Error:** ${view.requestError}`, "");
    return lines.join("\n");
  }
  if (!result) {
    if (view.steps !== undefined && view.steps.size > 0) {
      lines.push(renderSteps([...view.steps.values()]), "");
    }
    if (view.tools !== undefined && view.tools.size > 0) {
      lines.push(renderToolCalls([...view.tools.values()]), "");
    }
    lines.push("---", "", view.streamed, "");
    return lines.join("\n");
  }
  if (result.prompt !== undefined) {
    lines.push(
      "Dry run: this is the exact prompt a run would send. Nothing was sent to the backend.",
      "",
      "## Prompt",
      "",
      fenced(result.prompt, "text"),
      "",
    );
  } else {
    lines.push("---", "", result.output, "");
  }
  if (result.error) {
    lines.push(`> **Error:** ${result.error}`, "");
  }
  for (const note of result.notes ?? []) {
    lines.push(`> **Note:** ${note}`, "");
  }
  if ((result.steps ?? []).length > 0) {
    lines.push(renderSteps(result.steps ?? []), "");
  }
  if ((result.tool_calls ?? []).length > 0) {
    lines.push(renderToolCalls(result.tool_calls ?? []), "");
  }
  if ((result.edits ?? []).length > 0) {
    lines.push(renderEdits(result.edits ?? []), "");
  }
  lines.push("---", "", `*${runFooter(result)}*`, "");
  if (result.manifest.length > 0) {
    lines.push(renderManifest(result.manifest), "");
  }
  return lines.join("\n");
}

/** One line under a finished run: status, time, tokens, files, id. */
export function runFooter(result: RunResult): string {
  const parts = [`${statusLabel(result.status)} in ${formatDuration(result.duration_ms)}`];
  if (result.started_at !== undefined) {
    parts.push(`started ${formatTimestamp(result.started_at)}`);
  }
  const usage = result.usage;
  if (usage && (typeof usage.prompt_tokens === "number" || typeof usage.completion_tokens === "number")) {
    parts.push(`${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens`);
  }
  const included = result.manifest.filter((m) => m.status !== "excluded").length;
  parts.push(`${included} of ${result.manifest.length} files attached`);
  if (result.backend) {
    parts.push(`backend ${result.backend}${result.model ? ` (${result.model})` : ""}`);
  }
  parts.push(`run ${result.id}`);
  return parts.join(" · ");
}

/** A recipe's steps: one line per step (per file of a `for_each` step), with its status. */
export function renderSteps(steps: readonly Pick<RecipeStepResult, "id" | "agent" | "status" | "item">[]): string {
  const rows = ["## Steps", ""];
  for (const s of steps) {
    const mark = s.status === "succeeded" ? "✓" : s.status === "running" ? "…" : s.status === "skipped" ? "–" : "✗";
    rows.push(`- ${mark} **${s.id}**${s.item ? ` \`${s.item}\`` : ""} (${s.agent}): ${s.status}`);
  }
  return rows.join("\n");
}

/** What the agent did: one line per tool call, with its outcome. */
export function renderToolCalls(calls: readonly Pick<ToolCallTrace, "tool" | "status" | "summary">[]): string {
  const rows = ["## Tool calls", ""];
  for (const c of calls) {
    const mark = c.status === "succeeded" ? "✓" : c.status === "started" ? "…" : "✗";
    rows.push(`- ${mark} \`${c.tool}\` ${c.summary}`);
  }
  return rows.join("\n");
}

/** The proposed edits: one diff per edit, with its state (nothing is written until applied). */
export function renderEdits(edits: readonly ProposedEdit[]): string {
  const rows = [
    "## Proposed edits",
    "",
    "Nothing has been written: accept, review or discard them from the run's notification.",
    "",
  ];
  for (const e of edits) {
    rows.push(`### ${e.id}: ${e.path} (${e.state})`, "", fenced(e.diff, "diff"), "");
  }
  return rows.join("\n");
}

/** The manifest as a table: every file considered, with what happened to it and why. */
export function renderManifest(manifest: readonly ManifestEntry[]): string {
  const rows = [
    "## Context",
    "",
    "| File | From | Status | Tokens | Reason |",
    "| --- | --- | --- | ---: | --- |",
  ];
  for (const m of manifest) {
    rows.push(
      `| ${tableCell(m.path)} | ${tableCell(m.source)} | ${tableCell(m.status)} | ` +
        `${tableCell(m.tokens)} | ${tableCell(m.reason)} |`,
    );
  }
  return rows.join("\n");
}

/** The document of "Preview Context…": the exact prompt, then the manifest. */
export function renderPreview(agent: string, task: string, preview: ContextPreviewResult): string {
  return [
    `# ${agent}: context preview`,
    "",
    `**Task:** ${task || "(none)"}`,
    "",
    "The exact prompt a run would send (nothing was sent):",
    "",
    fenced(preview.prompt, "text"),
    "",
    renderManifest(preview.manifest),
    "",
  ].join("\n");
}

/**
 * The metrics as Markdown: one section per top-level group, nested values flattened into dotted
 * keys. The server owns what the groups contain; this only lays them out.
 */
export function renderMetrics(metrics: Record<string, unknown>): string {
  const lines = ["# agentls metrics", ""];
  for (const [group, value] of Object.entries(metrics)) {
    lines.push(`## ${group}`, "");
    if (value !== null && typeof value === "object") {
      lines.push("| Metric | Value |", "| --- | ---: |");
      for (const [key, v] of flatten(value as Record<string, unknown>, "")) {
        lines.push(`| ${tableCell(key)} | ${tableCell(formatValue(v))} |`);
      }
    } else {
      lines.push(String(formatValue(value)));
    }
    lines.push("");
  }
  return lines.join("\n");
}

function flatten(obj: Record<string, unknown> | unknown[], prefix: string): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [key, value] of Object.entries(obj)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === "object" && Object.keys(value).length > 0) {
      out.push(...flatten(value as Record<string, unknown>, name));
    } else {
      out.push([name, value]);
    }
  }
  return out;
}

function formatValue(value: unknown): string {
  if (typeof value === "number" && !Number.isInteger(value)) {
    return value.toFixed(3).replace(/\.?0+$/, "");
  }
  if (value !== null && typeof value === "object") {
    return JSON.stringify(value);
  }
  return String(value);
}

/** Bytes as a person reads them: `512 B`, `12.3 KB`, `4.56 MB` (decimal units, signed). */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? "-" : "";
  const n = Math.abs(bytes);
  if (n < 1000) {
    return `${sign}${n} B`;
  }
  const [value, unit] = n < 1e6 ? [n / 1e3, "KB"] : n < 1e9 ? [n / 1e6, "MB"] : [n / 1e9, "GB"];
  return `${sign}${value.toPrecision(3)} ${unit}`;
}

function site(row: MemorySite): string {
  return tableCell(`${row.file}:${row.line}`);
}

function signed(n: number, text: string): string {
  return n > 0 ? `+${text}` : text;
}

/**
 * A memory snapshot (`agentls.memory.profile`) as Markdown: the totals, where traced memory is,
 * what changed since the snapshot before, and the most numerous object types.
 */
export function renderMemorySnapshot(snapshot: MemorySnapshot): string {
  const lines = [
    `# agentls memory snapshot ${snapshot.snapshot}`,
    "",
    `**Traced now:** ${formatBytes(snapshot.traced_bytes)} · **peak:** ${formatBytes(snapshot.peak_traced_bytes)}` +
      ` · **tracing itself:** ${formatBytes(snapshot.tracemalloc_bytes)}`,
    "",
    "Only memory allocated since profiling started is traced. Take another snapshot after some runs:",
    "a site that keeps growing between snapshots is a leak.",
    "",
    "## Where traced memory is",
    "",
    "| Site | Size | Blocks |",
    "| --- | ---: | ---: |",
    ...snapshot.top.map((r) => `| ${site(r)} | ${formatBytes(r.size)} | ${r.count} |`),
    "",
    `## Changes since ${snapshot.compared_with}`,
    "",
  ];
  if (snapshot.diff.length === 0) {
    lines.push("Nothing changed.", "");
  } else {
    lines.push("| Site | Change | Size now | Blocks change |", "| --- | ---: | ---: | ---: |");
    for (const r of snapshot.diff) {
      lines.push(
        `| ${site(r)} | ${signed(r.size_diff, formatBytes(r.size_diff))} | ${formatBytes(r.size)} | ` +
          `${signed(r.count_diff, String(r.count_diff))} |`,
      );
    }
    lines.push("");
  }
  lines.push(
    "## Objects by type",
    "",
    "Objects the garbage collector tracks (containers and instances), most numerous first; sizes are shallow.",
    "",
    "| Type | Count | Size |",
    "| --- | ---: | ---: |",
    ...snapshot.types.map((t) => `| ${tableCell(t.type)} | ${t.count} | ${formatBytes(t.size)} |`),
    "",
  );
  return lines.join("\n");
}
