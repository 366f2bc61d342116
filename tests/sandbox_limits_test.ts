// The sandboxes' rate limits are the providers' published ones (sandbox/limits.ts cites each), and
// they throttle exactly at the limit: a bucket at its level, Lightspeed's fixed window at its
// 351st request until the window resets, QuickBooks' sliding minute at its 501st request and its
// 11th request in flight. The adapters' pacers start from the same figures.
import assert from "node:assert/strict";
import { windowBucket } from "../functions-shared/providers/pacing.ts";
import { adapters } from "../functions-shared/providers/registry.ts";
import { DEFAULT_CREDIT_BUCKET } from "../functions-shared/providers/shiphero/credits.ts";
import { MAX_CONCURRENT, PUBLISHED_LIMITS, RateLimits, SHOPIFY_PLANS } from "../sandbox/limits.ts";
import { withSandbox } from "./helpers/streams.ts";

Deno.test("sandbox limits: the figures the providers publish", () => {
  // shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits: points/second by plan.
  assert.deepEqual(
    Object.fromEntries(Object.entries(SHOPIFY_PLANS).map(([p, s]) => [p, s.restorePerSecond])),
    { standard: 100, advanced: 200, plus: 1000, enterprise: 2000 },
  );
  const size = (p: string) => {
    const { kind, capacity, restorePerSecond } = PUBLISHED_LIMITS[p]!;
    return { kind, capacity, window_s: capacity / restorePerSecond, restorePerSecond };
  };
  assert.deepEqual(size("shopify"), {
    kind: "bucket",
    capacity: 2000,
    window_s: 20,
    restorePerSecond: 100,
  });
  assert.deepEqual(size("shiphero"), {
    kind: "bucket",
    capacity: 4004,
    window_s: 4004 / 60,
    restorePerSecond: 60,
  });
  // x-series-api.lightspeedhq.com/docs/rate_limiting: 300 × 1 register + 50 per 300 s.
  assert.equal(size("lightspeed").kind, "fixed_window");
  assert.equal(size("lightspeed").capacity, 300 * 1 + 50);
  assert.equal(Math.round(size("lightspeed").window_s), 300);
  // Intuit: 500 requests per minute per realm, 10 concurrent.
  assert.equal(size("quickbooks").kind, "sliding_window");
  assert.equal(size("quickbooks").capacity, 500);
  assert.equal(Math.round(size("quickbooks").window_s), 60);
  assert.equal(MAX_CONCURRENT.quickbooks, 10);
  assert.deepEqual(size("maystro"), {
    kind: "bucket",
    capacity: 60,
    window_s: 6,
    restorePerSecond: 10,
  });
});

Deno.test("sandbox limits: each adapter's pacer starts from the sandbox's published figures", () => {
  assert.deepEqual(adapters.shopify.facts.rateLimit, SHOPIFY_PLANS.standard);
  assert.deepEqual(DEFAULT_CREDIT_BUCKET, { capacity: 4004, restorePerSecond: 60 });
  assert.deepEqual(adapters.maystro.facts.rateLimit, { capacity: 60, restorePerSecond: 10 });
  assert.deepEqual(adapters.lightspeed.facts.rateLimit, windowBucket(350, 300));
  assert.deepEqual(adapters.quickbooks.facts.rateLimit, windowBucket(500, 60));
});

Deno.test("sandbox limits: a bucket throttles at its level and refills at its rate", () => {
  const limits = new RateLimits();
  assert.ok(limits.take("shopify", "shop", 2000, 0).ok);
  const refused = limits.take("shopify", "shop", 1, 0);
  assert.deepEqual(refused, { ok: false, available: 0, waitMs: 10 }, "1 point at 100/s");
  assert.ok(limits.take("shopify", "shop", 100, 1000).ok, "100 points a second later");
  assert.ok(!limits.take("shopify", "shop", 1, 1000).ok);
  assert.deepEqual(limits.usage("shopify", "shop"), { requests: 4, throttled: 2, units: 2100 });

  limits.shopifyPlan("plus");
  assert.deepEqual(limits.size("shopify"), { capacity: 20_000, restorePerSecond: 1000 });
});

Deno.test("sandbox limits: Lightspeed's window takes 350 requests, then none until it resets", () => {
  const limits = new RateLimits();
  const t0 = 1_000_000;
  for (let i = 0; i < 350; i++) {
    assert.ok(limits.take("lightspeed", "r", 1, t0 + i * 100).ok, `request ${i + 1}`);
  }
  const refused = limits.take("lightspeed", "r", 1, t0 + 200_000);
  assert.equal(refused.ok, false);
  assert.equal(refused.waitMs, 100_000, "until the window that began at t0 resets");
  assert.ok(!limits.take("lightspeed", "r", 1, t0 + 299_999).ok);
  const fresh = limits.take("lightspeed", "r", 1, t0 + 300_000);
  assert.deepEqual(fresh, { ok: true, available: 349, waitMs: 0 }, "a new window");
  assert.ok(limits.take("lightspeed", "other", 1, t0).ok, "each retailer has its own");
});

Deno.test("sandbox limits: QuickBooks takes 500 requests in any minute, the 501st when the first leaves it", () => {
  const limits = new RateLimits();
  for (let i = 0; i < 500; i++) {
    assert.ok(limits.take("quickbooks", "realm", 1, i * 100).ok, `request ${i + 1}`);
  }
  const refused = limits.take("quickbooks", "realm", 1, 50_000);
  assert.equal(refused.ok, false);
  assert.equal(refused.waitMs, 10_000, "the first request (t=0) leaves the minute at 60 s");
  assert.ok(!limits.take("quickbooks", "realm", 1, 59_999).ok);
  assert.ok(limits.take("quickbooks", "realm", 1, 60_000).ok);
  assert.ok(!limits.take("quickbooks", "realm", 1, 60_050).ok, "the second left at 60.1 s");
});

Deno.test("sandbox limits: QuickBooks answers an 11th request of a realm in flight with its throttle", async () => {
  await withSandbox(async (sb) => {
    const account = await sb.account("quickbooks");
    await sb.call("POST", "/latency", { ms: 400 });
    const { api_base_url } = sb.configFor(account);
    const realm = account.config.realm_id;
    const query = (n: number) =>
      fetch(
        `${api_base_url}/v3/company/${realm}/query?query=${
          encodeURIComponent(`select * from Customer startposition ${n} maxresults 1`)
        }`,
        { headers: { authorization: `Bearer ${account.credentials.access_token}` } },
      );
    const answers = await Promise.all(Array.from({ length: 11 }, (_, i) => query(i + 1)));
    const statuses = answers.map((a) => a.status).sort();
    const bodies = await Promise.all(answers.map((a) => a.text()));
    assert.deepEqual(statuses, [...Array(10).fill(200), 429]);
    assert.ok(bodies.some((b) => b.includes("ThrottleExceeded")));
    const after = await query(1);
    await after.body?.cancel();
    assert.equal(after.status, 200, "once the others answered, a request goes through");
  });
});
