// The client-side rate model (functions-shared/providers/pacing.ts), on a fake clock: it waits
// exactly as long as the bucket needs to refill, follows what the provider reports, and holds
// every request back for the wait a throttle asked for.
import assert from "node:assert/strict";
import { Pacer } from "../functions-shared/providers/pacing.ts";

function fakeTime() {
  let now = 0;
  const slept: number[] = [];
  return {
    clock: () => now,
    sleep: (ms: number) => {
      slept.push(ms);
      now += ms;
      return Promise.resolve();
    },
    slept,
    advance: (ms: number) => void (now += ms),
  };
}

Deno.test("pacer: spends the bucket without waiting, then waits for the refill a request needs", async () => {
  const t = fakeTime();
  const pacer = new Pacer({ capacity: 100, restorePerSecond: 10 }, { ...t, reserve: 0 });
  for (let i = 0; i < 4; i++) await pacer.take(25);
  assert.deepEqual(t.slept, []);
  await pacer.take(20);
  assert.deepEqual(t.slept, [2000], "20 points at 10/s");
  assert.equal(pacer.waitedMs, 2000);
});

Deno.test("pacer: keeps a reserve for other clients of the same account", async () => {
  const t = fakeTime();
  const pacer = new Pacer({ capacity: 100, restorePerSecond: 10 }, { ...t, reserve: 0.1 });
  await pacer.take(90);
  await pacer.take(1);
  assert.deepEqual(t.slept, [100], "1 point plus 10 in reserve, with 10 left, is 0.1 s away");
});

Deno.test("pacer: what the provider reports replaces the model", async () => {
  const t = fakeTime();
  const pacer = new Pacer({ capacity: 1000, restorePerSecond: 50 }, { ...t, reserve: 0 });
  pacer.observe({ available: 30, capacity: 2000, restorePerSecond: 100 });
  await pacer.take(130);
  assert.deepEqual(t.slept, [1000], "100 missing points at the reported 100/s");
});

Deno.test("pacer: after a throttle nothing goes until the provider's wait is over", async () => {
  const t = fakeTime();
  const pacer = new Pacer({ capacity: 10, restorePerSecond: 2 }, { ...t, reserve: 0 });
  pacer.backOff(3000);
  await pacer.take(1);
  assert.equal(t.clock(), 3000, "held back exactly the 3 s asked");
  assert.equal(
    Math.round(pacer.available),
    6,
    "1 left at the throttle, +6 during the wait, −1 taken",
  );
});
