// The task of an "Ask <agent>" code action or "▶ Run" code lens (the server's agentls.ask), and
// the values of a Copilot agent's ${input:...} variables, which the server cannot ask for.
// The server runs the agent's default task (front matter `task:`) when the arguments carry none;
// an agent without one would run on an empty task, so VS Code asks the user first. No agent logic
// here: the agent list comes from the server, and the answer goes back in the arguments.

export interface ListedAgent {
  name: string;
  task?: string;
  /** Copilot `${input:name}` variables the agent needs (agents.list). */
  inputs?: { name: string; placeholder: string }[];
}

/** What asking the user gave: the text, or undefined when they dismissed the box. */
export type AskUser = (agent: string) => Thenable<string | undefined> | Promise<string | undefined>;

/** The value of one Copilot `${input:name}`, or undefined when the user dismissed the box. */
export type AskInput = (
  agent: string,
  name: string,
  placeholder: string,
) => Thenable<string | undefined> | Promise<string | undefined>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The arguments to send for agentls.ask: unchanged when they carry a task (or ask for a preview,
 * or name an agent with a default task) and every `${input:...}` the agent needs; with the user's
 * task and input values otherwise; undefined when the user dismissed a question (the command is
 * then not sent).
 */
export async function withTask(
  args: unknown[],
  listAgents: () => Promise<ListedAgent[]>,
  askUser: AskUser,
  askInput?: AskInput,
): Promise<unknown[] | undefined> {
  const first = args[0];
  if (args.length !== 1 || !isRecord(first)) {
    return args;
  }
  const ask = first as { agent?: unknown; task?: unknown; preview?: unknown; variables?: unknown };
  if (typeof ask.agent !== "string") {
    return args;
  }
  const needsTask = ask.task === undefined && ask.preview !== true;
  if (!needsTask && askInput === undefined) {
    return args;
  }
  const agent = (await listAgents()).find((a) => a.name === ask.agent);
  if (agent === undefined) {
    return args; // unknown agents get the server's error
  }
  const out: Record<string, unknown> = { ...first };
  let changed = false;
  if (needsTask && (agent.task ?? "") === "") {
    const task = await askUser(ask.agent);
    if (task === undefined) {
      return undefined;
    }
    out.task = task;
    changed = true;
  }
  if (askInput !== undefined && (agent.inputs ?? []).length > 0) {
    const variables: Record<string, unknown> = isRecord(ask.variables) ? { ...ask.variables } : {};
    for (const input of agent.inputs ?? []) {
      if (variables[input.name] !== undefined) {
        continue;
      }
      const value = await askInput(ask.agent, input.name, input.placeholder);
      if (value === undefined) {
        return undefined;
      }
      variables[input.name] = value;
      changed = true;
    }
    out.variables = variables;
  }
  return changed ? [out] : args;
}
