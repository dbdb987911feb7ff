// Unit tests of askTask.ts: when a code action's run asks the user for a task.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ListedAgent, withTask } from "../src/askTask";

const agents: ListedAgent[] = [
  { name: "explain", task: "explain this code" },
  { name: "free", task: "" },
];
const list = (): Promise<ListedAgent[]> => Promise.resolve(agents);

test("an agent with a default task is sent as is, without a question", async () => {
  const asked: string[] = [];
  const args = [{ agent: "explain", uri: "file:///a.py" }];
  const out = await withTask(args, list, (a) => {
    asked.push(a);
    return Promise.resolve("x");
  });
  assert.equal(out, args);
  assert.deepEqual(asked, []);
});

test("an agent without one gets the user's task", async () => {
  const out = await withTask([{ agent: "free", uri: "file:///a.py" }], list, () => Promise.resolve("why?"));
  assert.deepEqual(out, [{ agent: "free", uri: "file:///a.py", task: "why?" }]);
});

test("dismissing the question sends nothing", async () => {
  assert.equal(await withTask([{ agent: "free" }], list, () => Promise.resolve(undefined)), undefined);
});

test("a given task, a preview, or an unknown agent is left alone", async () => {
  const never = (): Promise<string> => Promise.reject(new Error("must not ask"));
  for (const args of [[{ agent: "free", task: "" }], [{ agent: "free", preview: true }], [{ agent: "nobody" }], []]) {
    assert.equal(await withTask(args, list, never), args);
  }
});

const copilot: ListedAgent[] = [
  { name: "plan", task: "plan it", inputs: [{ name: "goal", placeholder: "what to reach" }] },
];
const listCopilot = (): Promise<ListedAgent[]> => Promise.resolve(copilot);
const noTask = (): Promise<string> => Promise.reject(new Error("must not ask for a task"));

test("a Copilot agent's inputs are asked for and sent as variables", async () => {
  const asked: string[] = [];
  const out = await withTask([{ agent: "plan", uri: "file:///a.py" }], listCopilot, noTask, (a, n, p) => {
    asked.push(`${a}:${n}:${p}`);
    return Promise.resolve("ship");
  });
  assert.deepEqual(out, [{ agent: "plan", uri: "file:///a.py", variables: { goal: "ship" } }]);
  assert.deepEqual(asked, ["plan:goal:what to reach"]);
});

test("inputs already given are not asked again; dismissing an input sends nothing", async () => {
  const given = [{ agent: "plan", variables: { goal: "x" } }];
  const never = (): Promise<string> => Promise.reject(new Error("must not ask"));
  assert.equal(await withTask(given, listCopilot, noTask, never), given);
  const out = await withTask([{ agent: "plan", preview: true }], listCopilot, noTask, () =>
    Promise.resolve(undefined),
  );
  assert.equal(out, undefined);
});
