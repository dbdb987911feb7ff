/**
 * How past and running runs appear in the History view and the history picker. Pure: it maps
 * `agentls.history.list` summaries (and runs still in flight) to rows with a status icon, the
 * agent, the task and the time, and never imports `vscode`.
 */

import { formatDuration, formatTimestamp, formatWhen, oneLine, statusLabel } from "./format";
import type { RunStatus, RunSummary } from "./protocol";

/** A codicon id and theme colour id for each status. */
export const STATUS_ICONS: Record<RunStatus, { icon: string; color?: string }> = {
  queued: { icon: "clock" },
  running: { icon: "sync~spin" },
  succeeded: { icon: "pass", color: "testing.iconPassed" },
  failed: { icon: "error", color: "testing.iconFailed" },
  cancelled: { icon: "circle-slash", color: "disabledForeground" },
  timed_out: { icon: "watch", color: "testing.iconErrored" },
};

/** One row of the History view. */
export interface HistoryRow {
  id: string;
  label: string;
  description: string;
  tooltip: string;
  icon: string;
  color?: string;
}

/** A run still going, known from `agentls/runStarted` before history records it. */
export interface LiveRun {
  id: string;
  agent: string;
  task: string;
  startedAt: number;
}

/** The History view row of one run. */
export function historyRow(run: RunSummary, nowMs: number): HistoryRow {
  const look = (STATUS_ICONS as Record<string, { icon: string; color?: string }>)[run.status] ?? {
    icon: "question",
  };
  const task = oneLine(run.task, 60) || "(no task)";
  const tooltip = [
    `${run.agent}: ${statusLabel(run.status)} in ${formatDuration(run.duration_ms)}`,
    `Started ${formatTimestamp(run.started_at)}`,
    `Task: ${oneLine(run.task, 200)}`,
    ...(run.error ? [`Error: ${run.error}`] : []),
    ...(run.output_preview ? ["", oneLine(run.output_preview, 200)] : []),
  ];
  return {
    id: run.id,
    label: `${run.agent}: ${task}`,
    description: `${statusLabel(run.status)} · ${formatWhen(run.started_at, nowMs)}`,
    tooltip: tooltip.join("\n"),
    icon: look.icon,
    ...(look.color !== undefined ? { color: look.color } : {}),
  };
}

/**
 * Rows for the view: runs in flight first (newest first), then history newest first. A run that
 * is both live and already in history (it just ended) is shown once, from history.
 */
export function historyRows(live: readonly LiveRun[], runs: readonly RunSummary[], nowMs: number): HistoryRow[] {
  const recorded = new Set(runs.map((r) => r.id));
  const liveRows = [...live]
    .filter((r) => !recorded.has(r.id))
    .sort((a, b) => b.startedAt - a.startedAt)
    .map((r) =>
      historyRow(
        {
          id: r.id,
          agent: r.agent,
          task: r.task,
          status: "running",
          started_at: r.startedAt,
          duration_ms: Math.max(0, nowMs - r.startedAt * 1000),
          error: null,
          output_preview: "",
        },
        nowMs,
      ),
    );
  const past = [...runs].sort((a, b) => b.started_at - a.started_at).map((r) => historyRow(r, nowMs));
  return [...liveRows, ...past];
}

/** One entry of the "Show History" quick pick. */
export interface HistoryPick {
  id: string;
  label: string;
  description: string;
  detail: string;
}

/** Quick-pick entries, newest first. */
export function historyPicks(runs: readonly RunSummary[], nowMs: number): HistoryPick[] {
  return [...runs]
    .sort((a, b) => b.started_at - a.started_at)
    .map((run) => {
      const row = historyRow(run, nowMs);
      return {
        id: run.id,
        label: `$(${row.icon}) ${row.label}`,
        description: row.description,
        detail: run.error ? `Error: ${oneLine(run.error, 120)}` : oneLine(run.output_preview, 120),
      };
    });
}
