/**
 * Tells the user, once, that the server could not start, with buttons that open the setting to fix
 * it or the output that shows why.
 */

import * as vscode from "vscode";
import { errorMessage, log } from "./log";

/** Shows the message; "Open Setting" goes to `agentls.server.command`. */
export async function showStartFailure(message: string): Promise<void> {
  const choice = await vscode.window.showErrorMessage(message, "Open Setting", "Show Output");
  if (choice === "Open Setting") {
    await openSetting("agentls.server.command");
  } else if (choice === "Show Output") {
    log().show();
  }
}

/**
 * Opens the settings editor on one setting. In a remote window (SSH, containers, code-server) the
 * server's settings are machine-scoped and live on the Remote tab, which the User tab would show as
 * "No Settings Found".
 */
async function openSetting(key: string): Promise<void> {
  if (vscode.env.remoteName) {
    try {
      await vscode.commands.executeCommand("workbench.action.openRemoteSettings", { query: key });
      return;
    } catch (error) {
      log().warn(`Could not open the remote settings: ${errorMessage(error)}`);
    }
  }
  await vscode.commands.executeCommand("workbench.action.openSettings", key);
}
