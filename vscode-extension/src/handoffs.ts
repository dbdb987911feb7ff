/**
 * After a run, the next steps its agent offers (Copilot `handoffs`) as buttons on a notification.
 *
 * Choosing one runs the handoff's agent with the handoff's prompt as the task: at once when the
 * handoff says `send: true`, otherwise through the task input box with the prompt filled in, so
 * the user can edit it first (as Copilot pre-fills its chat input). What is attached (the
 * selection, else the active file) is what the editor shows when the button is pressed.
 */

import * as vscode from "vscode";
import { handoffButtons, handoffMessage, handoffPicks, handoffsToOffer, NEXT_STEP } from "./handoffsModel";
import type { Handoff, RunResult } from "./protocol";

/**
 * Offers `result`'s handoffs whose agent is among `runnable()` (asked only when there are any);
 * resolves with the one chosen (undefined: none, or dismissed).
 */
export async function offerHandoffs(
  result: RunResult,
  runnable: () => Promise<ReadonlySet<string>>,
  start: (handoff: Handoff) => Promise<unknown>,
): Promise<Handoff | undefined> {
  if (handoffsToOffer(result).length === 0) {
    return undefined;
  }
  const handoffs = handoffsToOffer(result, await runnable());
  if (handoffs.length === 0) {
    return undefined;
  }
  const choice = await vscode.window.showInformationMessage(handoffMessage(result), ...handoffButtons(handoffs));
  let chosen: Handoff | undefined;
  if (choice === NEXT_STEP) {
    chosen = (await vscode.window.showQuickPick(handoffPicks(handoffs), { placeHolder: "Which next step?" }))
      ?.handoff;
  } else {
    chosen = handoffs.find((h) => h.label === choice);
  }
  if (chosen !== undefined) {
    await start(chosen);
  }
  return chosen;
}
