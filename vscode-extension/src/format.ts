/**
 * Small text formatters shared by the documents, views and pickers: durations, times, status
 * words and Markdown escaping. Pure, so every string a user reads is unit-tested.
 */

import type { RunStatus } from "./protocol";

/** Human words for each run status, as the views and documents show them. */
export const STATUS_LABELS: Record<RunStatus, string> = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  timed_out: "Timed out",
};

/** The label of a status, tolerating statuses a newer server may add. */
export function statusLabel(status: string): string {
  return (STATUS_LABELS as Record<string, string>)[status] ?? status;
}

/** `850 ms`, `1.2 s`, `2 min 5 s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    return "";
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60_000) {
    return `${(ms / 1000).toFixed(1)} s`;
  }
  const totalSeconds = Math.round(ms / 1000);
  return `${Math.floor(totalSeconds / 60)} min ${totalSeconds % 60} s`;
}

/**
 * When a run started, relative to now for the last day (`just now`, `5 min ago`, `3 h ago`) and
 * as a local date and time before that.
 *
 * @param startedAt Unix time in seconds, as the server sends it.
 * @param nowMs The current time in milliseconds (a parameter so tests are deterministic).
 */
export function formatWhen(startedAt: number, nowMs: number): string {
  const ageSeconds = Math.max(0, nowMs / 1000 - startedAt);
  if (ageSeconds < 60) {
    return "just now";
  }
  if (ageSeconds < 3600) {
    return `${Math.floor(ageSeconds / 60)} min ago`;
  }
  if (ageSeconds < 86_400) {
    return `${Math.floor(ageSeconds / 3600)} h ago`;
  }
  return formatTimestamp(startedAt);
}

/** `2025-05-01 14:03` in local time. */
export function formatTimestamp(startedAt: number): string {
  const d = new Date(startedAt * 1000);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

/** The first line of a text, cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number): string {
  const first = (text.split(/\r?\n/).find((line) => line.trim() !== "") ?? "").trim();
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** A Markdown table cell: pipes escaped, newlines flattened. */
export function tableCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) {
    return "";
  }
  return String(value).replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

/** A fenced code block that no backtick run inside `text` can close early. */
export function fenced(text: string, language = ""): string {
  const longest = Math.max(2, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length));
  const fence = "`".repeat(longest + 1);
  const body = text.endsWith("\n") ? text : `${text}\n`;
  return `${fence}${language}\n${body}${fence}`;
}
