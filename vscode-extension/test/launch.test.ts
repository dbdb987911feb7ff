// Unit tests of launch.ts: the server never starts in a workspace folder, and never with the
// working directory on Python's import path.
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnParameters } from "../src/launch";
import { serverCommand } from "../src/settings";

test("the server starts in the neutral folder with PYTHONSAFEPATH=1, whatever the command", () => {
  for (const cmd of [
    serverCommand([], "/proj/.venv/bin/python", "linux"),
    serverCommand(undefined, undefined, "linux"),
    serverCommand(["/venv/bin/agentls", "serve"], undefined, "linux"),
  ]) {
    const params = spawnParameters(cmd, "/ext/agentls", { PATH: "/usr/bin", UNSET: undefined, PYTHONSAFEPATH: "" });
    assert.equal(params.cwd, "/ext/agentls");
    assert.equal(params.env.PYTHONSAFEPATH, "1");
    assert.equal(params.env.PATH, "/usr/bin");
    assert.equal("UNSET" in params.env, false);
    assert.deepEqual([params.command, ...params.args], [cmd.command, ...cmd.args]);
  }
});

test("the default command lines keep the working directory off sys.path with -P", () => {
  assert.deepEqual(serverCommand(undefined, undefined, "linux").args.slice(0, 2), ["-P", "-m"]);
  assert.deepEqual(serverCommand([], "/usr/bin/python3.12", "linux").args.slice(0, 2), ["-P", "-m"]);
});
