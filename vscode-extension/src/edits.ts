/**
 * A run's proposed edits in the editor: Accept all, Accept per file, Review, or Discard.
 *
 * The server never writes an agent's edit. Accepting calls `agentls.edits.apply`, and the server
 * answers with a `workspace/applyEdit`. Accepting is the user's confirmation, so it asks for none
 * (`confirm: false`): VS Code applies the edit at once to the files' buffers, unsaved and undoable.
 * "Review…" asks for confirmation instead (`needsConfirmation` change annotations): VS Code then
 * shows its refactor preview, where such changes start unticked and the user ticks those to apply.
 * (Asking for confirmation after "Accept All" would make its "Apply" apply nothing unless every
 * box was ticked first.) An edit whose file changed since it was proposed is refused by the server,
 * and the message says which file.
 */

import * as vscode from "vscode";
import type { ServerClient } from "./client";
import { errorMessage } from "./log";
import {
  Commands,
  type EditsApplyArgs,
  type EditsApplyResult,
  type EditsDiscardResult,
  type RunResult,
} from "./protocol";

export const ACCEPT_ALL = "Accept All";
export const ACCEPT_PER_FILE = "Accept per File…";
export const REVIEW = "Review…";
export const DISCARD = "Discard";

/** Offers the run's proposed edits; resolves once the user chose and the server answered. */
export async function offerEdits(server: ServerClient, result: RunResult): Promise<void> {
  const edits = (result.edits ?? []).filter((e) => e.state === "proposed");
  if (edits.length === 0) {
    return;
  }
  const files = [...new Set(edits.map((e) => e.path))];
  const choice = await vscode.window.showInformationMessage(
    `agentls: ${result.agent} proposed ${edits.length} edit(s) to ${files.length} file(s). ` +
      "Nothing is written until you accept.",
    ACCEPT_ALL,
    ACCEPT_PER_FILE,
    REVIEW,
    DISCARD,
  );
  try {
    if (choice === ACCEPT_ALL) {
      await applyEdits(server, result.id, undefined, false);
    } else if (choice === REVIEW) {
      await applyEdits(server, result.id, undefined, true);
    } else if (choice === ACCEPT_PER_FILE) {
      const picked = await vscode.window.showQuickPick(files, {
        canPickMany: true,
        placeHolder: "Apply the edits of which files?",
      });
      if (picked !== undefined && picked.length > 0) {
        const ids = edits.filter((e) => picked.includes(e.path)).map((e) => e.id);
        await applyEdits(server, result.id, ids, false);
      }
    } else if (choice === DISCARD) {
      await server.execute<EditsDiscardResult>(Commands.editsDiscard, { id: result.id });
    }
  } catch (error) {
    void vscode.window.showErrorMessage(`agentls: ${errorMessage(error)}`);
  }
}

/**
 * Applies a run's edits (all still proposed, or the given ids) through `workspace/applyEdit`;
 * with `confirm`, VS Code's refactor preview asks the user about each change first.
 */
export async function applyEdits(
  server: ServerClient,
  id: string,
  edits?: string[],
  confirm = true,
): Promise<EditsApplyResult> {
  const args: EditsApplyArgs = edits === undefined ? { id, confirm } : { id, edits, confirm };
  const answer = await server.execute<EditsApplyResult>(Commands.editsApply, args);
  if (!answer.applied) {
    void vscode.window.showWarningMessage(
      `agentls: the edits were not applied${answer.failure_reason ? `: ${answer.failure_reason}` : ""}.`,
    );
  }
  return answer;
}
