// Unit tests of format.ts: the durations, times and Markdown escapes users read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fenced, formatDuration, formatWhen, oneLine, statusLabel, tableCell } from "../src/format";

test("durations read naturally at every scale", () => {
  assert.equal(formatDuration(0), "0 ms");
  assert.equal(formatDuration(849.6), "850 ms");
  assert.equal(formatDuration(1234), "1.2 s");
  assert.equal(formatDuration(125_000), "2 min 5 s");
  assert.equal(formatDuration(Number.NaN), "");
});

test("times are relative for a day, then a date", () => {
  const now = Date.UTC(2025, 4, 1, 12, 0, 0);
  const s = now / 1000;
  assert.equal(formatWhen(s - 5, now), "just now");
  assert.equal(formatWhen(s + 5, now), "just now"); // a clock a little ahead is still "just now"
  assert.equal(formatWhen(s - 300, now), "5 min ago");
  assert.equal(formatWhen(s - 3 * 3600, now), "3 h ago");
  assert.match(formatWhen(s - 3 * 86_400, now), /^2025-04-2[89] \d\d:\d\d$/);
});

test("status words, including unknown ones", () => {
  assert.equal(statusLabel("timed_out"), "Timed out");
  assert.equal(statusLabel("paused"), "paused");
});

test("one line of a text, cut with an ellipsis", () => {
  assert.equal(oneLine("\n  first line  \nsecond", 50), "first line");
  assert.equal(oneLine("abcdefghij", 5), "abcd…");
  assert.equal(oneLine("", 5), "");
});

test("table cells cannot break the table", () => {
  assert.equal(tableCell("a|b\nc"), "a\\|b c");
  assert.equal(tableCell(null), "");
  assert.equal(tableCell(42), "42");
});

test("a fence is longer than any backtick run inside", () => {
  assert.equal(fenced("x", "text"), "```text\nx\n```");
  const tricky = "before\n```\ninside\n````\nafter";
  const block = fenced(tricky);
  assert.ok(block.startsWith("`````\n"));
  assert.ok(block.endsWith("\n`````"));
});
