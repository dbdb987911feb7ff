// Unit tests of agentsModel.ts: Agents view rows and agent picker entries.
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentPicks, agentRows, problemText } from "../src/agentsModel";
import type { AgentInfo } from "../src/protocol";

const AGENTS: AgentInfo[] = [
  {
    name: "writer",
    description: "Drafts docs",
    backend: null,
    model: null,
    source: ".agents/writer.md",
    uri: "file:///ws/.agents/writer.md",
    valid: true,
    problems: [],
  },
  {
    name: "broken",
    description: "",
    backend: "nowhere",
    model: null,
    source: ".agents/broken.md",
    uri: "file:///ws/.agents/broken.md",
    valid: false,
    problems: [{ message: "unknown backend 'nowhere'", line: 2, column: 9 }, "second problem"],
  },
  {
    name: "reviewer",
    description: "Reviews code",
    backend: "local",
    model: "qwen",
    source: ".agents/reviewer.md",
    uri: "file:///ws/.agents/reviewer.md",
    valid: true,
    problems: [],
  },
];

test("valid agents come first, by name; invalid ones are marked", () => {
  const rows = agentRows(AGENTS);
  assert.deepEqual(
    rows.map((r) => [r.label, r.icon, r.contextValue]),
    [
      ["reviewer", "hubot", "agent"],
      ["writer", "hubot", "agent"],
      ["broken", "warning", "invalidAgent"],
    ],
  );
  const broken = rows[2];
  assert.equal(broken?.description, "invalid: line 3: unknown backend 'nowhere'");
  assert.ok(broken?.tooltip.includes("• second problem"));
  assert.equal(broken?.uri, "file:///ws/.agents/broken.md");
});

test("a row's tooltip names the backend and the file", () => {
  const reviewer = agentRows(AGENTS)[0];
  assert.equal(reviewer?.tooltip, "reviewer\nReviews code\nBackend: local · qwen\nDefined in .agents/reviewer.md");
  const writer = agentRows(AGENTS)[1];
  assert.ok(writer?.tooltip.includes("Backend: default backend"));
});

test("picker entries show description and validity", () => {
  const picks = agentPicks(AGENTS);
  assert.deepEqual(picks[0], {
    label: "$(hubot) reviewer",
    description: "local · qwen",
    detail: "Reviews code",
    agent: "reviewer",
    valid: true,
  });
  assert.equal(picks[2]?.label, "$(warning) broken");
  assert.equal(picks[2]?.detail, "Invalid: line 3: unknown backend 'nowhere'; second problem");
  assert.equal(picks[2]?.valid, false);
});

test("problems read the same in either shape", () => {
  assert.equal(problemText("plain"), "plain");
  assert.equal(problemText({ message: "no line" }), "no line");
});

test("a recipe reads as one, with its steps' agents", () => {
  const recipe: AgentInfo = {
    name: "fix-and-review",
    description: "Plan, fix, review",
    backend: null,
    model: null,
    kind: "recipe",
    steps: [
      { id: "plan", agent: "planner", needs: [], for_each: null },
      { id: "review", agent: "reviewer", needs: ["plan"], for_each: null },
    ],
    source: ".agents/fix-and-review.md",
    uri: "file:///ws/.agents/fix-and-review.md",
    valid: true,
    problems: [],
  };
  const [pick] = agentPicks([recipe]);
  assert.equal(pick?.label, "$(list-ordered) fix-and-review");
  assert.equal(pick?.description, "recipe · 2 steps: planner, reviewer");
  const [row] = agentRows([recipe]);
  assert.ok(row?.tooltip.includes("Recipe: 2 steps: planner, reviewer"));
});
