// The client-side rate model (functions-shared/providers/pacing.ts), on a fake clock: it waits
// exactly as long as the bucket needs to refill, follows what the provider reports, and holds
// every request back for the wait a throttle asked for; and the same model kept in Postgres,
// shared by the pacers of several function instances.
import assert from "node:assert/strict";
import { postgresBudgets } from "../functions-shared/db/rate_budgets.ts";
import { Pacer, windowBucket } from "../functions-shared/providers/pacing.ts";
import { adapters } from "../functions-shared/providers/registry.ts";
import { RateLimits } from "../sandbox/limits.ts";
import { withTestDatabase } from "./helpers/stack.ts";
import { context, readerOf, seeded, withSandbox } from "./helpers/streams.ts";

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

for (
  const [provider, requests, windowSeconds] of [
    ["lightspeed", 350, 300],
    ["quickbooks", 500, 60],
  ] as const
) {
  Deno.test(`pacer: a ${provider} window (${requests} in ${windowSeconds} s) is kept and used to 97 %`, async () => {
    // The pacer on a fake clock against the sandbox's own window: never refused, and its
    // sustained rate (after the first window) is within 3 % of the limit's.
    const t = fakeTime();
    const pacer = new Pacer(windowBucket(requests, windowSeconds), t);
    const limits = new RateLimits();
    const windowMs = windowSeconds * 1000;
    let sent = 0;
    let sentAfterFirstWindow = 0;
    while (t.clock() < 4 * windowMs) {
      await pacer.take(1);
      const taken = limits.take(provider, "account", 1, t.clock());
      assert.ok(taken.ok, `request ${sent + 1} at ${t.clock()} ms was throttled`);
      sent++;
      if (t.clock() >= windowMs) sentAfterFirstWindow++;
    }
    const rate = sentAfterFirstWindow / (3 * windowSeconds);
    const limit = requests / windowSeconds;
    assert.ok(rate >= 0.97 * limit && rate <= limit, `${rate}/s of ${limit}/s`);
  });
}

Deno.test("pacer: a window's remaining count caps the level but never raises it", async () => {
  const t = fakeTime();
  const pacer = new Pacer({ capacity: 10, restorePerSecond: 1 }, { ...t, reserve: 0 });
  await pacer.take(8);
  pacer.observe({ available: 340, bound: true });
  assert.equal(Math.round(pacer.available), 2, "340 left in the window is no burst");
  pacer.observe({ available: 1, bound: true });
  assert.equal(Math.round(pacer.available), 1, "1 left in the window is all there is");
  pacer.observe({ available: 1, bound: true, ...windowBucket(650, 300) });
  assert.deepEqual(
    pacer.model,
    { capacity: 10, restorePerSecond: 640 / 300 },
    "two registers' limit, 650 in 300 s",
  );
});

Deno.test("pacers of two instances sharing tether.rate_budgets draw from one bucket", async () => {
  await withTestDatabase(async (db) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
      insert into tether.connections (provider, external_id, name, config)
      values ('maystro', 'shared-budget', 'shared budget', '{}') returning id`;
    const store = postgresBudgets(db.sql);
    const model = { capacity: 10, restorePerSecond: 1 };
    const waits: number[] = [];
    const sleep = (ms: number) => {
      waits.push(ms);
      return new Promise<void>((resolve) => setTimeout(resolve, ms));
    };
    const a = new Pacer(model, { shared: { store, key: id } });
    const b = new Pacer(model, { shared: { store, key: id }, sleep });

    // A spends all but the reserve; B's own model is full, but the shared one is not.
    await a.take(9);
    await b.take(1);
    assert.equal(waits.length, 1, "B waited for the refill A's spending made necessary");
    assert.ok(waits[0]! > 0 && waits[0]! <= 1000, `B waited ${waits[0]} ms (1 point at 1/s)`);

    // A report lowers the shared level; a stale, higher one never raises it back.
    a.observe({ available: 0 });
    a.observe({ available: 10 });
    await a.settled();
    await b.take(1);
    assert.equal(waits.length, 2, "B waited again: the bucket was reported empty");
    assert.ok(waits[1]! > 1000, `B waited ${waits[1]} ms for 2 points at 1/s`);

    // A throttle's wait holds every instance back.
    // (B has just taken the bucket down to the reserve: 2 s for the next point, 3 s blocked.)
    a.backOff(3000);
    await a.settled();
    await b.take(1);
    assert.ok(waits[2]! > 2000 && waits[2]! <= 3000, `B waited ${waits[2]} ms of A's 3000 ms`);

    // Requests go in the order they asked: a dear one is not overtaken by a cheap one asking
    // after it (a proxied call beside a sync's page), which would starve it while cheap ones
    // keep coming.
    const turns: number[] = [];
    const record = (ms: number) => (turns.push(ms), Promise.resolve());
    const dear = new Pacer(model, { shared: { store, key: id }, sleep: record });
    const cheap = new Pacer(model, { shared: { store, key: id }, sleep: record });
    await dear.take(5);
    await cheap.take(1);
    assert.equal(turns.length, 2, "both waited");
    assert.ok(
      turns[1]! > turns[0]!,
      `the cheap one's turn (${turns[1]} ms) after the dear one's (${turns[0]} ms)`,
    );
    assert.ok(turns[1]! - turns[0]! >= 900, "1 point at 1/s after it");
    await db.sql`update tether.rate_budgets set level = capacity where connection_id = ${id}`;

    // The bucket's size a provider reported to one instance is every instance's: a pacer whose
    // facts say 350 waits for the reported 5's refill (1.5 points at 1/s), not for 36 points.
    a.observe({ available: 0, capacity: 5 });
    await a.settled();
    const facts = new Pacer({ capacity: 350, restorePerSecond: 1 }, {
      shared: { store, key: id },
      sleep,
    });
    await facts.take(1);
    const last = waits[waits.length - 1]!;
    assert.ok(last > 1000 && last <= 1500, `it waited ${last} ms`);
  });
});

Deno.test("a shared budget takes a refund and a report in one correction: the refund first, then the report caps it", async () => {
  await withTestDatabase(async (db) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
      insert into tether.connections (provider, external_id, name, config)
      values ('maystro', 'one-correction', 'one correction', '{}') returning id`;
    const store = postgresBudgets(db.sql);
    let adjusts = 0;
    const counted = {
      ...store,
      adjust: (...args: Parameters<typeof store.adjust>) => (adjusts++, store.adjust(...args)),
    };
    const pacer = new Pacer({ capacity: 10, restorePerSecond: 0.001 }, {
      shared: { store: counted, key: id },
    });
    await pacer.take(9);
    // 1 left; 6 of the 9 given back is 7, and the provider says 4 are left: 4, not 1 + 6.
    pacer.observe({ available: 4, refund: 6 });
    await pacer.settled();
    assert.equal(adjusts, 1, "one statement for the refund and the report");
    const [{ level }] = await db.sql<[{ level: number }]>`
      select level from tether.rate_budgets where connection_id = ${id}`;
    assert.ok(Math.abs(level - 4) < 0.1, `the shared level is ${level}`);
  });
});

Deno.test("a shared budget follows Shopify's bucket: what a page reserved beyond its actual cost is given back", async () => {
  await withTestDatabase(async (db) => {
    await withSandbox(async (sb) => {
      const setup = await seeded(sb, "shopify", { orders: 0, customers: 30 });
      const [{ id }] = await db.sql<[{ id: string }]>`
        insert into tether.connections (provider, external_id, name, config)
        values ('shopify', ${setup.account.external_id}, 'refund', '{}') returning id`;
      const store = postgresBudgets(db.sql);
      let adjusts = 0;
      const pacer = new Pacer(adapters.shopify.facts.rateLimit, {
        shared: {
          store: { ...store, adjust: (...args) => (adjusts++, store.adjust(...args)) },
          key: id,
        },
      });
      // A customers page reserves more than the 30 customers cost.
      await readerOf("shopify", "customers")(
        context({ pacer }),
        setup.conn,
        setup.account.credentials,
        {
          cursor: null,
          from: null,
          until: new Date(Date.now() + 60_000),
          pageSize: 250,
        },
      );
      await pacer.settled();
      const [{ level }] = await db.sql<[{ level: number }]>`
        select level from tether.rate_budgets where connection_id = ${id}`;
      const usage = await sb.call<{ level: number; units: number }>(
        "GET",
        `/usage/shopify/${setup.account.external_id}`,
      );
      assert.ok(usage.units < 100, `the page cost ${usage.units} points`);
      assert.equal(adjusts, 1, "the page's refund and report are one correction (one statement)");
      assert.ok(
        Math.abs(level - usage.level) < 50,
        `the shared level ${level} is Shopify's ${usage.level}, not lower by the unused reservation`,
      );
    });
  });
});
