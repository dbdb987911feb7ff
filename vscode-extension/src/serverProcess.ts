/**
 * Owns the server's operating-system process: spawning it for the language client, keeping the end
 * of its stderr (which explains a failed start, e.g. "No module named agentls"), and making sure it
 * is gone after a stop, killing it if it ignores the LSP exit notification.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { spawnParameters } from "./launch";
import type { ServerCommand } from "./settings";

/** How much of the server's stderr is kept. */
const STDERR_TAIL_CHARS = 2000;
/** How long a stopped server may take to exit before it is killed. */
const EXIT_GRACE_MS = 2000;

export class ServerProcess {
  private current: ChildProcess | undefined;
  private tail = "";

  /** @param neutralDir The working directory of the server: never a workspace folder. */
  constructor(private readonly neutralDir: string) {}

  /** The end of the current process's stderr. */
  get stderrTail(): string {
    return this.tail;
  }

  /** Starts the server; resolves once it runs, rejects with a readable reason when it cannot. */
  spawn(cmd: ServerCommand): Promise<ChildProcess> {
    return new Promise<ChildProcess>((resolve, reject) => {
      this.tail = "";
      const params = spawnParameters(cmd, this.neutralDir, process.env);
      const proc = spawn(params.command, params.args, { cwd: params.cwd, env: params.env, stdio: "pipe" });
      this.current = proc;
      proc.stderr.on("data", (chunk: Buffer) => {
        this.tail = (this.tail + chunk.toString("utf8")).slice(-STDERR_TAIL_CHARS);
      });
      proc.once("error", (error) => reject(new Error(`cannot run ${cmd.command}: ${error.message}`)));
      proc.once("spawn", () => resolve(proc));
    });
  }

  /**
   * Waits for the process to exit and its output to close after the client stopped it; kills it
   * if it does not. Afterwards `stderrTail` holds everything the process wrote.
   */
  async end(): Promise<void> {
    const proc = this.current;
    this.current = undefined;
    if (proc === undefined || proc.stderr === null || proc.stderr.closed) {
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        proc.kill("SIGKILL");
        resolve();
      }, EXIT_GRACE_MS);
      proc.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
