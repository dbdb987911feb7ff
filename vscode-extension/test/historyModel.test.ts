// Unit tests of historyModel.ts: History view rows and history picker entries.
import assert from "node:assert/strict";
import { test } from "node:test";
import { historyPicks, historyRows } from "../src/historyModel";
import type { RunSummary } from "../src/protocol";

const NOW = Date.UTC(2025, 4, 1, 12, 0, 0);
const S = NOW / 1000;

const RUNS: RunSummary[] = [
  {
    id: "old",
    agent: "reviewer",
    task: "Review the parser\nin detail",
    status: "succeeded",
    started_at: S - 7200,
    duration_ms: 2100,
    error: null,
    output_preview: "All fine.",
  },
  {
    id: "new",
    agent: "writer",
    task: "",
    status: "failed",
    started_at: S - 120,
    duration_ms: 50,
    error: "backend unreachable",
    output_preview: "",
  },
];

test("rows show status icon, agent, task and time, newest first", () => {
  const rows = historyRows([], RUNS, NOW);
  assert.deepEqual(
    rows.map((r) => [r.id, r.icon, r.label, r.description]),
    [
      ["new", "error", "writer: (no task)", "Failed · 2 min ago"],
      ["old", "pass", "reviewer: Review the parser", "Succeeded · 2 h ago"],
    ],
  );
  assert.equal(rows[0]?.color, "testing.iconFailed");
  assert.ok(rows[0]?.tooltip.includes("Error: backend unreachable"));
  assert.ok(rows[1]?.tooltip.includes("All fine."));
});

test("runs in flight come first with a spinning icon, and once recorded appear only once", () => {
  const live = [{ id: "live", agent: "reviewer", task: "Now", startedAt: S - 3 }];
  const rows = historyRows(live, RUNS, NOW);
  assert.equal(rows.length, 3);
  assert.deepEqual([rows[0]?.id, rows[0]?.icon, rows[0]?.description], ["live", "sync~spin", "Running · just now"]);
  const recorded = historyRows(
    [{ id: "new", agent: "writer", task: "", startedAt: S - 120 }],
    RUNS,
    NOW,
  );
  assert.deepEqual(
    recorded.map((r) => r.id),
    ["new", "old"],
  );
});

test("unknown statuses still get a row", () => {
  const rows = historyRows([], [{ ...RUNS[0]!, status: "paused" as never }], NOW);
  assert.equal(rows[0]?.icon, "question");
  assert.match(rows[0]?.description ?? "", /^paused ·/);
});

test("picker entries carry the icon in the label and the error or preview as detail", () => {
  const picks = historyPicks(RUNS, NOW);
  assert.deepEqual(picks[0], {
    id: "new",
    label: "$(error) writer: (no task)",
    description: "Failed · 2 min ago",
    detail: "Error: backend unreachable",
  });
  assert.equal(picks[1]?.detail, "All fine.");
});
