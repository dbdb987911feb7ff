// Unit tests of outputDocument.ts: streamed output assembly and the Markdown of run, preview,
// metrics and memory snapshot documents.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  OutputAssembler,
  formatBytes,
  renderManifest,
  renderMemorySnapshot,
  renderMetrics,
  renderPreview,
  renderRun,
} from "../src/outputDocument";
import { type ManifestEntry, type MemorySnapshot, type RunResult, isProfilingNotStarted } from "../src/protocol";

const MANIFEST: ManifestEntry[] = [
  { path: "src/app.py", source: "selection", status: "included", reason: null, bytes: 120, size: 120, tokens: 30 },
  { path: "src/big|file.bin", source: "glob", status: "excluded", reason: "binary", bytes: 0, size: 9000, tokens: 0 },
];

function result(overrides: Partial<RunResult> = {}): RunResult {
  return {
    id: "r-1",
    agent: "reviewer",
    status: "succeeded",
    output: "Looks good.\n",
    duration_ms: 1530,
    usage: { prompt_tokens: 100, completion_tokens: 7 },
    manifest: MANIFEST,
    ...overrides,
  };
}

test("chunks in order make the text", () => {
  const out = new OutputAssembler();
  assert.equal(out.add(0, "Hel"), true);
  assert.equal(out.add(1, "lo"), true);
  assert.equal(out.text, "Hello");
});

test("a chunk ahead of a gap waits; duplicates and stale chunks are ignored", () => {
  const out = new OutputAssembler();
  assert.equal(out.add(1, "B"), false);
  assert.equal(out.text, "");
  assert.equal(out.waiting, 1);
  assert.equal(out.add(0, "A"), true);
  assert.equal(out.text, "AB");
  assert.equal(out.add(1, "X"), false);
  assert.equal(out.add(0, "X"), false);
  assert.equal(out.add(2.5, "X"), false);
  assert.equal(out.add(3, "D"), false);
  assert.equal(out.add(3, "Y"), false);
  assert.equal(out.add(2, "C"), true);
  assert.equal(out.text, "ABCD");
  assert.equal(out.waiting, 0);
});

test("a running document shows the task and the output so far", () => {
  const md = renderRun({ agent: "reviewer", task: "check it", streamed: "partial answ" });
  assert.match(md, /^# reviewer: Running…/);
  assert.match(md, /\*\*Task:\*\* check it/);
  assert.ok(md.includes("partial answ"));
});

test("a finished run shows the result's output, not the stream, then a footer and the manifest", () => {
  const md = renderRun({ agent: "reviewer", task: "check it", streamed: "stale", result: result() });
  assert.match(md, /^# reviewer: Succeeded/);
  assert.ok(md.includes("Looks good."));
  assert.ok(!md.includes("stale"));
  assert.ok(md.includes("*Succeeded in 1.5 s · 100 prompt + 7 completion tokens · 1 of 2 files attached · run r-1*"));
  assert.ok(md.includes("| src/app.py | selection | included | 30 |  |"));
  assert.ok(md.includes("| src/big\\|file.bin | glob | excluded | 0 | binary |"));
});

test("a failed run shows its error", () => {
  const md = renderRun({
    agent: "reviewer",
    task: "t",
    streamed: "",
    result: result({ status: "failed", output: "", error: "backend said 500", usage: null, manifest: [] }),
  });
  assert.match(md, /^# reviewer: Failed/);
  assert.ok(md.includes("> **Error:** backend said 500"));
  assert.ok(md.includes("*Failed in 1.5 s · 0 of 0 files attached · run r-1*"));
  assert.ok(!md.includes("## Context"));
});

test("a dry run shows the exact prompt fenced, and says nothing was sent", () => {
  const prompt = "You are a reviewer.\n```py\nx = 1\n```\nTask: check it";
  const md = renderRun({ agent: "reviewer", task: "check it", streamed: "", result: result({ output: "", prompt }) });
  assert.ok(md.includes("Nothing was sent to the backend."));
  assert.ok(md.includes(`\`\`\`\`text\n${prompt}\n\`\`\`\``));
});

test("a request that failed before running says so", () => {
  const md = renderRun({ agent: "ghost", task: "t", streamed: "", requestError: "unknown agent 'ghost'" });
  assert.match(md, /^# ghost: Not run/);
  assert.ok(md.includes("> **Error:** unknown agent 'ghost'"));
});

test("the preview shows the prompt and the manifest", () => {
  const md = renderPreview("reviewer", "", { prompt: "PROMPT", manifest: MANIFEST });
  assert.ok(md.includes("**Task:** (none)"));
  assert.ok(md.includes("```text\nPROMPT\n```"));
  assert.equal(md.includes(renderManifest(MANIFEST)), true);
});

test("metrics are laid out as tables of flattened keys", () => {
  const md = renderMetrics({ memory: { rss_bytes: 1000, cpu: { percent: 1.23456 } }, uptime: 5, cache: {} });
  assert.ok(md.includes("## memory"));
  assert.ok(md.includes("| rss_bytes | 1000 |"));
  assert.ok(md.includes("| cpu.percent | 1.235 |"));
  assert.ok(md.includes("## uptime\n\n5"));
  assert.ok(md.includes("## cache\n\n| Metric | Value |"));
});

test("a running document lists the tool calls announced so far", () => {
  const tools = new Map([["c1", { tool: "read_file", status: "started" as const, summary: "reading src/app.py" }]]);
  const md = renderRun({ agent: "fixer", task: "fix", streamed: "", tools });
  assert.ok(md.includes("## Tool calls"));
  assert.ok(md.includes("… `read_file` reading src/app.py"));
});

test("a finished run shows its notes, tool calls and proposed edits as diffs", () => {
  const md = renderRun({
    agent: "fixer",
    task: "fix",
    streamed: "",
    result: result({
      notes: ["backend 'x' sets tools = false: ran without tools"],
      tool_calls: [{ call_id: "c1", tool: "read_file", status: "refused", summary: "refused: .env is a secret file" }],
      edits: [
        {
          id: "e1",
          path: "src/app.py",
          uri: "file:///ws/src/app.py",
          range: { start: { line: 1, character: 0 }, end: { line: 1, character: 4 } },
          old_text: "old",
          new_text: "new",
          diff: "--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-old\n+new\n",
          base: "sha256:00",
          state: "proposed",
        },
      ],
    }),
  });
  assert.ok(md.includes("> **Note:** backend 'x' sets tools = false"));
  assert.ok(md.includes("✗ `read_file` refused: .env is a secret file"));
  assert.ok(md.includes("### e1: src/app.py (proposed)"));
  assert.ok(md.includes("```diff\n--- a/src/app.py"));
});

const SNAPSHOT: MemorySnapshot = {
  tracing: true,
  snapshot: 2,
  compared_with: "snapshot 1",
  traced_bytes: 4_560_000,
  peak_traced_bytes: 5_000_000,
  tracemalloc_bytes: 900,
  top: [{ file: "/srv/agentls/workspace/loader.py", line: 88, size: 4_000_000, count: 64 }],
  diff: [
    { file: "/srv/agentls/workspace/loader.py", line: 88, size: 4_000_000, size_diff: 3_900_000, count: 64, count_diff: 60 },
    { file: "/srv/a|b.py", line: 3, size: 0, size_diff: -1_200, count: 0, count_diff: -2 },
  ],
  types: [{ type: "dict", count: 2880, size: 1_326_696 }],
};

test("a memory snapshot shows sites, their changes and types as tables", () => {
  const md = renderMemorySnapshot(SNAPSHOT);
  assert.ok(md.startsWith("# agentls memory snapshot 2\n"));
  assert.ok(md.includes("**Traced now:** 4.56 MB · **peak:** 5.00 MB · **tracing itself:** 900 B"));
  assert.ok(md.includes("| /srv/agentls/workspace/loader.py:88 | 4.00 MB | 64 |"));
  assert.ok(md.includes("## Changes since snapshot 1"));
  assert.ok(md.includes("| /srv/agentls/workspace/loader.py:88 | +3.90 MB | 4.00 MB | +60 |"));
  assert.ok(md.includes("| /srv/a\\|b.py:3 | -1.20 KB | 0 B | -2 |"), md);
  assert.ok(md.includes("| dict | 2880 | 1.33 MB |"));
  const quiet = renderMemorySnapshot({ ...SNAPSHOT, diff: [] });
  assert.ok(quiet.includes("Nothing changed."));
});

test("bytes are shown in decimal units with their sign", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(12_345), "12.3 KB");
  assert.equal(formatBytes(-4_560_000), "-4.56 MB");
  assert.equal(formatBytes(2e9), "2.00 GB");
});

test("only the server's not-started refusal starts profiling", () => {
  const notStarted = { code: -32803, message: "memory profiling is not started: call ... first" };
  assert.equal(isProfilingNotStarted(notStarted), true);
  assert.equal(isProfilingNotStarted({ code: -32803, message: "agentls is still starting; try again" }), false);
  assert.equal(isProfilingNotStarted({ code: -32602, message: "not started" }), false);
  assert.equal(isProfilingNotStarted(new Error("not started")), false);
  assert.equal(isProfilingNotStarted(null), false);
});

test("a running recipe lists its steps as they start and end", () => {
  const steps = new Map([
    ["s1", { id: "plan", agent: "planner", status: "succeeded" }],
    ["s2", { id: "docs", agent: "writer", status: "running", item: "src/a.py" }],
  ]);
  const md = renderRun({ agent: "fix-and-review", task: "go", streamed: "", steps });
  assert.ok(md.includes("## Steps"));
  assert.ok(md.includes("- ✓ **plan** (planner): succeeded"));
  assert.ok(md.includes("- … **docs** `src/a.py` (writer): running"));
});

test("a finished recipe shows every step with its status", () => {
  const md = renderRun({
    agent: "fix-and-review",
    task: "go",
    streamed: "",
    result: result({
      manifest: [],
      steps: [
        { id: "plan", agent: "planner", run_id: "a", status: "failed", error: "boom" },
        { id: "impl", agent: "implementer", run_id: null, status: "skipped" },
      ],
    }),
  });
  assert.ok(md.includes("- ✗ **plan** (planner): failed"));
  assert.ok(md.includes("- – **impl** (implementer): skipped"));
});
