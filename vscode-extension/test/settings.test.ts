// Unit tests of settings.ts: what the server receives from the agentls.* settings, and how the
// server command is chosen.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  describeCommand,
  serverCommand,
  startFailureMessage,
  toInitializationOptions,
  toServerSettings,
} from "../src/settings";

/** The `agentls` section as VS Code returns it when nothing is set (package.json defaults). */
const UNSET: Record<string, unknown> = {
  server: { command: [] },
  default_backend: null,
  backends: {},
  limits: { cache_max_bytes: null, run_timeout: null, max_files: null },
  data_dir: null,
  log_level: null,
};

const reader =
  (values: Record<string, unknown>) =>
  (key: string): unknown =>
    values[key];

test("unset settings send nothing, so agentls.toml and the user file decide", () => {
  assert.deepEqual(toServerSettings(reader(UNSET)), {});
});

test("set settings are sent in the server's shape; extension-only keys never are", () => {
  const settings = toServerSettings(
    reader({
      ...UNSET,
      default_backend: " local ",
      backends: { local: { kind: "openai", base_url: "http://127.0.0.1:11434/v1", model: "qwen" } },
      limits: { cache_max_bytes: 1024, run_timeout: 2.5, max_files: null },
      data_dir: "~/agentls-data",
      log_level: "debug",
    }),
  );
  assert.deepEqual(settings, {
    default_backend: "local",
    backends: { local: { kind: "openai", base_url: "http://127.0.0.1:11434/v1", model: "qwen" } },
    limits: { cache_max_bytes: 1024, run_timeout: 2.5 },
    data_dir: "~/agentls-data",
    log_level: "DEBUG",
  });
  assert.equal("server" in settings, false);
});

test("wrong values are passed on for the server to report, not silently fixed", () => {
  const settings = toServerSettings(reader({ ...UNSET, limits: { max_files: "many" } }));
  assert.deepEqual(settings.limits, { max_files: "many" });
});

test("initializationOptions carry the workspace trust", () => {
  assert.deepEqual(toInitializationOptions(reader(UNSET), false), { trusted: false });
  assert.deepEqual(toInitializationOptions(reader({ ...UNSET, log_level: "ERROR" }), true), {
    log_level: "ERROR",
    trusted: true,
  });
});

test("the server command comes from the setting first", () => {
  const cmd = serverCommand(["/venv/bin/agentls", "serve", "--log-file", "/tmp/x y.log"], "/usr/bin/python3.12", "linux");
  assert.deepEqual(cmd, { command: "/venv/bin/agentls", args: ["serve", "--log-file", "/tmp/x y.log"], origin: "setting" });
  assert.equal(describeCommand(cmd), '/venv/bin/agentls serve --log-file "/tmp/x y.log"');
});

test("then the Python extension's interpreter, then python3", () => {
  assert.deepEqual(serverCommand([], "/proj/.venv/bin/python", "linux"), {
    command: "/proj/.venv/bin/python",
    args: ["-P", "-m", "agentls", "serve"],
    origin: "python-extension",
  });
  assert.deepEqual(serverCommand(undefined, undefined, "linux"), {
    command: "python3",
    args: ["-P", "-m", "agentls", "serve"],
    origin: "default",
  });
  assert.equal(serverCommand([], undefined, "win32").command, "python");
});

test("a malformed command setting is a clear error", () => {
  assert.throws(() => serverCommand("python -m agentls", undefined, "linux"), /must be a list of strings/);
  assert.throws(() => serverCommand(["python", 3], undefined, "linux"), /non-empty strings/);
  assert.throws(() => serverCommand(["python", ""], undefined, "linux"), /non-empty strings/);
});

test("a failed start names the command, the server's last words and the fix", () => {
  const traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nModuleNotFoundError: No module named \'agentls\'\n\n';
  assert.equal(
    startFailureMessage(serverCommand(undefined, undefined, "linux"), traceback, "connection closed"),
    "The agentls server could not start with `python3 -P -m agentls serve`: " +
      "ModuleNotFoundError: No module named 'agentls'. Install agentls (pip install agentls), " +
      "select its environment in the Python extension, or set agentls.server.command.",
  );
  assert.equal(
    startFailureMessage(serverCommand(["/nope/agentls"], undefined, "linux"), "", "cannot run /nope/agentls: spawn ENOENT"),
    "The agentls server could not start with `/nope/agentls`: cannot run /nope/agentls: spawn ENOENT. " +
      "Check the agentls.server.command setting.",
  );
  assert.match(
    startFailureMessage(serverCommand([], "/venv/bin/python", "linux"), "", "exited"),
    /Install agentls in the selected Python environment/,
  );
});
