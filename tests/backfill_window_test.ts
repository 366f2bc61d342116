// The backfill's adaptive window rule (nextWindowSeconds in functions-shared/jobs/backfill.ts),
// as a pure function: no database, no provider.
import assert from "node:assert/strict";
import { nextWindowSeconds, WINDOW } from "../functions-shared/jobs/backfill.ts";

const DAY = 86_400;

Deno.test("a throttled window halves the next, however fast it was", () => {
  assert.equal(nextWindowSeconds({ current: DAY, elapsedMs: 10, throttled: true }), DAY / 2);
});

Deno.test("a window slower than slowMs halves the next", () => {
  const elapsedMs = WINDOW.slowMs + 1;
  assert.equal(nextWindowSeconds({ current: DAY, elapsedMs, throttled: false }), DAY / 2);
  assert.equal(nextWindowSeconds({ current: 7_201, elapsedMs, throttled: false }), 3_600);
});

Deno.test("a window faster than fastMs doubles the next", () => {
  const elapsedMs = WINDOW.fastMs - 1;
  assert.equal(nextWindowSeconds({ current: DAY, elapsedMs, throttled: false }), 2 * DAY);
});

Deno.test("a window between fastMs and slowMs keeps its size (bounds included)", () => {
  for (const elapsedMs of [WINDOW.fastMs, 10_000, WINDOW.slowMs]) {
    assert.equal(nextWindowSeconds({ current: DAY, elapsedMs, throttled: false }), DAY);
  }
});

Deno.test("halving and doubling stop at the bounds", () => {
  const min = WINDOW.minSeconds;
  const max = WINDOW.maxSeconds;
  assert.equal(nextWindowSeconds({ current: min, elapsedMs: 0, throttled: true }), min);
  assert.equal(nextWindowSeconds({ current: min + 1, elapsedMs: 0, throttled: true }), min);
  assert.equal(nextWindowSeconds({ current: max, elapsedMs: 0, throttled: false }), max);
  assert.equal(nextWindowSeconds({ current: max - 1, elapsedMs: 0, throttled: false }), max);
});
