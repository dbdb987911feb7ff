/**
 * Where and with what environment the server process starts, so that the workspace can never
 * shadow the installed server. Pure (no `vscode` import): the unit tests and the security tests
 * read exactly what the extension spawns.
 *
 * `python -m agentls` puts the working directory first on `sys.path`: started inside a repository
 * that contains `agentls/__main__.py`, it would run the repository's code instead of the server,
 * even in Restricted Mode. So the server starts in a neutral folder (the extension's own), with
 * `PYTHONSAFEPATH=1` (and `-P` in the default command lines, see `serverCommand`), which keep the
 * working directory off `sys.path` even when a user-set command starts Python.
 */

import type { ServerCommand } from "./settings";

/** What `child_process.spawn` receives. */
export interface SpawnParameters {
  command: string;
  args: string[];
  /** Never a workspace folder. */
  cwd: string;
  env: Record<string, string>;
}

/**
 * The spawn parameters for a server command.
 *
 * @param neutralDir A folder the workspace does not control (the extension's install folder).
 * @param baseEnv The extension host's environment, passed on with `PYTHONSAFEPATH=1` added.
 */
export function spawnParameters(
  cmd: ServerCommand,
  neutralDir: string,
  baseEnv: Record<string, string | undefined>,
): SpawnParameters {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(baseEnv)) {
    if (value !== undefined) {
      env[name] = value;
    }
  }
  env.PYTHONSAFEPATH = "1";
  return { command: cmd.command, args: [...cmd.args], cwd: neutralDir, env };
}
