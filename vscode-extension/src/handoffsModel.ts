/**
 * Which next steps (Copilot `handoffs`) to offer after a run, and how they read. Pure: it never
 * imports `vscode`; `handoffs.ts` shows them.
 *
 * Handoffs follow a run that did what was asked: a failed, cancelled or dry run offers none (the
 * next step of a plan that was never written makes no sense), and a handoff whose agent cannot run
 * here is left out. A few fit as buttons on the
 * run's notification; more are one button that opens a list.
 */

import { oneLine } from "./format";
import type { Handoff, RunResult } from "./protocol";

/** Handoffs shown as buttons of their own; with more, one "Next Step…" button lists them all. */
export const MAX_BUTTONS = 3;
export const NEXT_STEP = "Next Step…";

/**
 * The handoffs to offer after `result`, in the file's order: well-formed, unique by label, and,
 * when `runnable` is given, only those whose agent is in it (a button that can only fail is not
 * offered; the definition file shows a warning for such a handoff).
 */
export function handoffsToOffer(result: RunResult, runnable?: ReadonlySet<string>): Handoff[] {
  if (result.status !== "succeeded" || result.dry_run === true) {
    return [];
  }
  const seen = new Set<string>();
  const offered: Handoff[] = [];
  for (const h of result.handoffs ?? []) {
    if (typeof h?.label !== "string" || typeof h.agent !== "string" || h.label === "" || seen.has(h.label)) {
      continue;
    }
    if (runnable !== undefined && !runnable.has(h.agent)) {
      continue;
    }
    seen.add(h.label);
    offered.push({ label: h.label, agent: h.agent, prompt: h.prompt ?? "", send: h.send === true });
  }
  return offered;
}

/** The notification's text. */
export function handoffMessage(result: RunResult): string {
  return `agentls: ${result.agent} is done. Next step?`;
}

/** The notification's buttons: each label, or one "Next Step…" when there are too many. */
export function handoffButtons(handoffs: Handoff[]): string[] {
  return handoffs.length <= MAX_BUTTONS ? handoffs.map((h) => h.label) : [NEXT_STEP];
}

/** A quick-pick entry per handoff (when they do not fit as buttons). */
export function handoffPicks(handoffs: Handoff[]): { label: string; description: string; detail: string; handoff: Handoff }[] {
  return handoffs.map((h) => ({
    label: h.label,
    description: `runs ${h.agent}${h.send ? "" : " (you can edit the task first)"}`,
    detail: oneLine(h.prompt, 120),
    handoff: h,
  }));
}
