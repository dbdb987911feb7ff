/**
 * Turns the `agentls.*` VS Code settings into the server's configuration object, decides how the
 * server is started, and words the message when it cannot start. Pure: it takes the values VS Code returns and never imports `vscode`, so
 * it is unit-tested directly.
 *
 * The server merges its configuration from layers (defaults, user file, the workspace's
 * `agentls.toml`, then the client). Every setting here therefore defaults to empty, and an empty
 * value is left out of what is sent: a VS Code default must never hide a value from `agentls.toml`.
 * Extension-only settings live under `agentls.server.*` and are never sent.
 */

/** The server's configuration fields the extension sends (a subset of config.py's `Settings`). */
export interface ServerSettings {
  default_backend?: string;
  backends?: Record<string, Record<string, unknown>>;
  models?: Record<string, unknown>;
  limits?: Record<string, number>;
  data_dir?: string;
  log_level?: string;
}

/** What the server receives in `initializationOptions`: its settings plus the workspace's trust. */
export interface InitializationOptions extends ServerSettings {
  trusted: boolean;
}

/** Reads one key of the `agentls` section (VS Code's `WorkspaceConfiguration.get`). */
export type SettingReader = (key: string) => unknown;

/** Settings whose change needs a new server process; the others reach the running server. */
export const RESTART_SETTINGS: readonly string[] = ["agentls.server", "agentls.data_dir"];

/** Settings whose change the running server is told about through `workspace/didChangeConfiguration`. */
export const LIVE_SETTINGS: readonly string[] = [
  "agentls.default_backend",
  "agentls.backends",
  "agentls.models",
  "agentls.limits",
  "agentls.log_level",
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/**
 * The configuration object for the server, built from the `agentls` section.
 *
 * Limits that are null (unset) are dropped; anything else is passed on as the user wrote it, so the
 * server, which validates every layer, reports a wrong value with its own clear message.
 */
export function toServerSettings(read: SettingReader): ServerSettings {
  const out: ServerSettings = {};
  const defaultBackend = nonEmptyString(read("default_backend"));
  if (defaultBackend !== undefined) {
    out.default_backend = defaultBackend;
  }
  const backends = read("backends");
  if (isRecord(backends) && Object.keys(backends).length > 0) {
    out.backends = {};
    for (const [name, value] of Object.entries(backends)) {
      out.backends[name] = isRecord(value) ? { ...value } : (value as Record<string, unknown>);
    }
  }
  const models = read("models");
  if (isRecord(models) && Object.keys(models).length > 0) {
    out.models = { ...models };
  }
  const limits = read("limits");
  if (isRecord(limits)) {
    const set: Record<string, number> = {};
    for (const [name, value] of Object.entries(limits)) {
      if (value !== null && value !== undefined) {
        set[name] = value as number;
      }
    }
    if (Object.keys(set).length > 0) {
      out.limits = set;
    }
  }
  const dataDir = nonEmptyString(read("data_dir"));
  if (dataDir !== undefined) {
    out.data_dir = dataDir;
  }
  const logLevel = nonEmptyString(read("log_level"));
  if (logLevel !== undefined) {
    out.log_level = logLevel.toUpperCase();
  }
  return out;
}

/** `initializationOptions`: the settings plus `trusted`, which only the editor can know. */
export function toInitializationOptions(read: SettingReader, trusted: boolean): InitializationOptions {
  return { ...toServerSettings(read), trusted };
}

/** How to start the server: a program and its arguments, and where the choice came from. */
export interface ServerCommand {
  command: string;
  args: string[];
  /** Shown to the user when the server cannot start, so they know which setting to fix. */
  origin: "setting" | "python-extension" | "default";
}

/**
 * Chooses the server command: the `agentls.server.command` setting when set, else the interpreter
 * selected in the Python extension, else `python3 -P -m agentls serve` (`python` on Windows, where
 * `python3` is often the Store stub). `-P` keeps the working directory off `sys.path`, so a
 * workspace's own `agentls/` folder can never replace the server (see launch.ts).
 *
 * @throws Error with a user-facing message when the setting is present but not a list of strings.
 */
export function serverCommand(
  setting: unknown,
  pythonInterpreter: string | undefined,
  platform: string,
): ServerCommand {
  const serve = ["-P", "-m", "agentls", "serve"];
  if (Array.isArray(setting) && setting.length > 0) {
    if (!setting.every((part): part is string => typeof part === "string" && part !== "")) {
      throw new Error("agentls.server.command must be a list of non-empty strings, program first.");
    }
    const [command, ...args] = setting;
    return { command: command as string, args, origin: "setting" };
  }
  if (setting !== undefined && setting !== null && !Array.isArray(setting)) {
    throw new Error("agentls.server.command must be a list of strings, program first.");
  }
  if (pythonInterpreter !== undefined && pythonInterpreter !== "") {
    return { command: pythonInterpreter, args: serve, origin: "python-extension" };
  }
  return { command: platform === "win32" ? "python" : "python3", args: serve, origin: "default" };
}

/** The command line as one string, for messages and the log. */
export function describeCommand(cmd: ServerCommand): string {
  return [cmd.command, ...cmd.args].map((p) => (/\s/.test(p) ? JSON.stringify(p) : p)).join(" ");
}

/** The last non-empty lines of a text, joined: the gist of a traceback. */
function lastLines(text: string, count: number): string {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .slice(-count)
    .join(" ")
    .slice(-500);
}

/** What to do about a failed start, depending on where the command came from. */
function startHint(cmd: ServerCommand): string {
  switch (cmd.origin) {
    case "setting":
      return "Check the agentls.server.command setting.";
    case "python-extension":
      return "Install agentls in the selected Python environment (pip install agentls), or set agentls.server.command.";
    default:
      return "Install agentls (pip install agentls), select its environment in the Python extension, or set agentls.server.command.";
  }
}

/**
 * The one message shown when the server did not start: the command, the last line the server
 * printed (usually the exception, e.g. "No module named agentls") or else the client's reason, and
 * what to do about it.
 */
export function startFailureMessage(cmd: ServerCommand, stderrTail: string, failure: string): string {
  const reason = lastLines(stderrTail, 1) || failure;
  return `The agentls server could not start with \`${describeCommand(cmd)}\`: ${reason}. ${startHint(cmd)}`;
}
