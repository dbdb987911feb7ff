/**
 * Finds the Python interpreter selected in the Python extension (ms-python.python), when that
 * extension is installed, so the server starts in the environment where the user installed
 * agentls. Uses only the extension's public `environments` API, declared here in the few lines we
 * need instead of adding a dependency.
 */

import * as vscode from "vscode";
import { errorMessage, log } from "./log";

interface ResolvedEnvironment {
  executable: { uri?: vscode.Uri };
}

interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
  resolveEnvironment(env: { path: string } | string): Promise<ResolvedEnvironment | undefined>;
  onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
}

interface PythonExtensionApi {
  environments?: PythonEnvironmentsApi;
}

const PYTHON_EXTENSION_ID = "ms-python.python";

async function environmentsApi(): Promise<PythonEnvironmentsApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (extension === undefined) {
    return undefined;
  }
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    return api?.environments;
  } catch (error) {
    log().warn(`The Python extension did not activate: ${errorMessage(error)}`);
    return undefined;
  }
}

/**
 * The selected interpreter's executable for the first workspace folder, or undefined when the
 * Python extension is absent or has no usable selection.
 */
export async function selectedInterpreter(): Promise<string | undefined> {
  const api = await environmentsApi();
  if (api === undefined) {
    return undefined;
  }
  try {
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api.getActiveEnvironmentPath(resource);
    const resolved = await api.resolveEnvironment(active);
    return resolved?.executable.uri?.fsPath;
  } catch (error) {
    log().warn(`Could not read the selected Python interpreter: ${errorMessage(error)}`);
    return undefined;
  }
}

/** Calls `listener` when the user picks another interpreter; a no-op without the Python extension. */
export async function onInterpreterChanged(listener: () => void): Promise<vscode.Disposable> {
  const api = await environmentsApi();
  return api ? api.onDidChangeActiveEnvironmentPath(() => listener()) : new vscode.Disposable(() => undefined);
}
