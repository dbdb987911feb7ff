/**
 * The extension's one log: a VS Code `LogOutputChannel` named "agentls", shared by the extension
 * and the language client (the server's stderr and `window/logMessage` land here too). Nothing is
 * ever written to the console, and no API key reaches it: the extension never reads one.
 */

import * as vscode from "vscode";

let channel: vscode.LogOutputChannel | undefined;

/** The channel, created on first use. */
export function log(): vscode.LogOutputChannel {
  channel ??= vscode.window.createOutputChannel("agentls", { log: true });
  return channel;
}

/** A one-line description of any thrown value, for messages and the log. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "object" && error !== null && "message" in error) {
    return String(error.message);
  }
  return String(error);
}
