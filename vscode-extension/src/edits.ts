/**
 * A run's proposed edits in the editor: Accept all, Accept per file, or Discard.
 *
 * The server never writes an agent's edit. Accepting calls `agentls.edits.apply`, and the server
 * answers with a `workspace/applyEdit` whose changes carry `needsConfirmation` annotations, so VS
 * Code shows its refactor preview (a checkbox per change) before anything changes. An edit whose
 * file changed since it was proposed is refused by the server, and the message says which file.
 */

import * as vscode from "vscode";
import type { ServerClient } from "./client";
import { errorMessage } from "./log";
import { Commands, type EditsApplyResult, type EditsDiscardResult, type RunResult } from "./protocol";

export const ACCEPT_ALL = "Accept All";
export const ACCEPT_PER_FILE = "Accept per File…";
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
    DISCARD,
  );
  try {
    if (choice === ACCEPT_ALL) {
      await applyEdits(server, result.id);
    } else if (choice === ACCEPT_PER_FILE) {
      const picked = await vscode.window.showQuickPick(files, {
        canPickMany: true,
        placeHolder: "Apply the edits of which files?",
      });
      if (picked !== undefined && picked.length > 0) {
        const ids = edits.filter((e) => picked.includes(e.path)).map((e) => e.id);
        await applyEdits(server, result.id, ids);
      }
    } else if (choice === DISCARD) {
      await server.execute<EditsDiscardResult>(Commands.editsDiscard, { id: result.id });
    }
  } catch (error) {
    void vscode.window.showErrorMessage(`agentls: ${errorMessage(error)}`);
  }
}

/** Applies a run's edits (all still proposed, or the given ids) through `workspace/applyEdit`. */
export async function applyEdits(server: ServerClient, id: string, edits?: string[]): Promise<EditsApplyResult> {
  const args = edits === undefined ? { id } : { id, edits };
  const answer = await server.execute<EditsApplyResult>(Commands.editsApply, args);
  if (!answer.applied) {
    void vscode.window.showWarningMessage(
      `agentls: the edits were not applied${answer.failure_reason ? `: ${answer.failure_reason}` : ""}.`,
    );
  }
  return answer;
}
