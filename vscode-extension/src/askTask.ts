// The task of an "Ask <agent>" code action or "▶ Run" code lens (the server's agentls.ask).
// The server runs the agent's default task (front matter `task:`) when the arguments carry none;
// an agent without one would run on an empty task, so VS Code asks the user first. No agent logic
// here: the agent list comes from the server, and the answer goes back in the arguments.

export interface ListedAgent {
  name: string;
  task?: string;
}

/** What asking the user gave: the text, or undefined when they dismissed the box. */
export type AskUser = (agent: string) => Thenable<string | undefined> | Promise<string | undefined>;

/**
 * The arguments to send for agentls.ask: unchanged when they carry a task, ask for a preview, or
 * name an agent with a default task; with the user's task otherwise; undefined when the user
 * dismissed the question (the command is then not sent).
 */
export async function withTask(
  args: unknown[],
  listAgents: () => Promise<ListedAgent[]>,
  askUser: AskUser,
): Promise<unknown[] | undefined> {
  const first = args[0];
  if (args.length !== 1 || typeof first !== "object" || first === null) {
    return args;
  }
  const ask = first as { agent?: unknown; task?: unknown; preview?: unknown };
  if (typeof ask.agent !== "string" || ask.task !== undefined || ask.preview === true) {
    return args;
  }
  const agent = (await listAgents()).find((a) => a.name === ask.agent);
  if (agent === undefined || (agent.task ?? "") !== "") {
    return args; // unknown agents get the server's error; default tasks need no question
  }
  const task = await askUser(ask.agent);
  if (task === undefined) {
    return undefined;
  }
  return [{ ...ask, task }];
}
