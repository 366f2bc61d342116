// A job's Deadline: wall time, and CPU time where the clock can measure it; where it cannot (the
// Edge Runtime's Deno answers process.cpuUsage() with zeros), the CPU the work is estimated to
// have cost.
import assert from "node:assert/strict";
import { type Clock, Deadline } from "../functions-shared/deps.ts";
import { manualClock } from "./helpers/stack.ts";

Deno.test("without a CPU clock, estimated charges pass the CPU budget", () => {
  const clock: Clock = manualClock();
  const deadline = new Deadline(clock, 100_000, 1_500);
  deadline.charge(1_000);
  assert.equal(deadline.passed, false);
  deadline.charge(499);
  assert.equal(deadline.passed, false);
  deadline.charge(1);
  assert.equal(deadline.passed, true);
});

Deno.test("with a CPU clock, measured CPU counts and estimates do not", () => {
  let cpu = 10_000;
  const clock: Clock = { ...manualClock(), cpuMs: () => cpu };
  const deadline = new Deadline(clock, 100_000, 1_500);
  deadline.charge(5_000);
  assert.equal(deadline.passed, false, "an estimate is not what the runtime measured");
  cpu += 1_500;
  assert.equal(deadline.passed, true);
});

Deno.test("wall time passes the deadline whatever the CPU, and no CPU budget means none", () => {
  const clock = manualClock();
  const deadline = new Deadline(clock, 1_000);
  deadline.charge(1_000_000);
  assert.equal(deadline.passed, false);
  clock.advance(1_000);
  assert.equal(deadline.passed, true);
});
