// Unit tests of handoffsModel.ts: which next steps a run offers, and how they read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { handoffButtons, handoffMessage, handoffPicks, handoffsToOffer, NEXT_STEP } from "../src/handoffsModel";
import type { Handoff, RunResult } from "../src/protocol";

const REVIEW: Handoff = { label: "Review", agent: "reviewer", prompt: "Review the plan above.", send: true };
const BUILD: Handoff = { label: "Implement", agent: "implementer", prompt: "Implement it.\nAll of it.", send: false };

function result(overrides: Partial<RunResult>): RunResult {
  return {
    id: "r1",
    agent: "planner",
    status: "succeeded",
    output: "The plan.",
    duration_ms: 10,
    manifest: [],
    handoffs: [REVIEW, BUILD],
    ...overrides,
  };
}

test("a succeeded run offers its handoffs in the file's order", () => {
  assert.deepEqual(handoffsToOffer(result({})), [REVIEW, BUILD]);
  assert.equal(handoffMessage(result({})), "agentls: planner is done. Next step?");
});

test("failed, cancelled and dry runs offer none, nor does an older server", () => {
  for (const status of ["failed", "cancelled", "timed_out"] as const) {
    assert.deepEqual(handoffsToOffer(result({ status })), []);
  }
  assert.deepEqual(handoffsToOffer(result({ dry_run: true })), []);
  assert.deepEqual(handoffsToOffer(result({ handoffs: undefined })), []);
});

test("only handoffs to agents that can run here are offered", () => {
  assert.deepEqual(handoffsToOffer(result({}), new Set(["reviewer", "planner"])), [REVIEW]);
  assert.deepEqual(handoffsToOffer(result({}), new Set()), []);
});

test("a label offered twice, or malformed entries, become one button or none", () => {
  const twice = result({ handoffs: [REVIEW, { ...BUILD, label: "Review" }, { label: "", agent: "x", prompt: "", send: false }] });
  assert.deepEqual(handoffsToOffer(twice), [REVIEW]);
  const loose = result({ handoffs: [{ label: "Go", agent: "a" } as unknown as Handoff] });
  assert.deepEqual(handoffsToOffer(loose), [{ label: "Go", agent: "a", prompt: "", send: false }]);
});

test("up to three are buttons; more are one button that lists them", () => {
  assert.deepEqual(handoffButtons([REVIEW, BUILD]), ["Review", "Implement"]);
  const many = ["a", "b", "c", "d"].map((label) => ({ ...REVIEW, label }));
  assert.deepEqual(handoffButtons(many), [NEXT_STEP]);
  const [, build] = handoffPicks([REVIEW, BUILD]);
  assert.equal(build?.description, "runs implementer (you can edit the task first)");
  assert.equal(build?.detail, "Implement it.");
  assert.equal(handoffPicks([REVIEW])[0]?.description, "runs reviewer");
});
