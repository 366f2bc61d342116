// What every provider's stream readers promise, as one table: a small rate budget is paced with no
// throttled request; without a pacer a tiny budget ends the read as "rate_limited" with the wait
// the provider states (or its documented default), after the pages that fit; a record missing the
// field the cursor needs fails its page as "bad_response" naming the field, never a token. The
// readers run against the sandboxes, started in-process (no database); each provider's own
// behaviour (cursors, deletions, the sandbox's answers) is in tests/streams_<provider>_test.ts.

import assert from "node:assert/strict";
import type { BucketModel } from "../functions-shared/providers/pacing.ts";
import { Pacer, windowBucket } from "../functions-shared/providers/pacing.ts";
import { adapters } from "../functions-shared/providers/registry.ts";
import type { ProviderName, StreamName } from "../functions-shared/providers/types.ts";
import {
  apiStats,
  assertMatchesTruth,
  context,
  pages,
  readerOf,
  rejection,
  sandboxNow,
  seeded,
  type SeedOptions,
  setLimits,
  type Setup,
  store,
  type Stored,
  withSandbox,
} from "./helpers/streams.ts";
import type { SandboxControl } from "./helpers/sandbox.ts";

interface Contract {
  /** A budget the pacer must read through: each stream read with its page size, in order. */
  paced: {
    /** The sandbox's limit (its kind is the provider's: sandbox/limits.ts); else the published. */
    bucket?: BucketModel;
    /** The pacer's model, when it is not `bucket` (a window limit is paced by windowBucket). */
    pacer?: BucketModel;
    seed: SeedOptions;
    reads: [StreamName, number][];
    /** Requests the reads take at the least (so the budget really was spent several times). */
    minRequests: number;
  };
  /** A budget too small to read `stream` without a pacer. */
  throttled: {
    bucket: BucketModel;
    seed: SeedOptions;
    stream: StreamName;
    pageSize: number;
    /** The wait the error carries, in ms, bounds included. */
    retryAfterMs: [number, number];
    message?: RegExp;
  };
  /** A fault that removes a field the cursor needs from the first orders page. */
  missingField: { seed: SeedOptions; field: string; message: RegExp };
}

const CONTRACTS: Record<ProviderName, Contract> = {
  shiphero: {
    // ShipHero does not report the credits left: the pacer runs on the bucket model alone.
    paced: {
      bucket: { capacity: 100, restorePerSecond: 150 },
      seed: { orders: 250 },
      reads: [["orders", 20]],
      minRequests: 13,
    },
    // 21 credits required, 9 left, 1 credit per second: "…which requires 21 credits, but there are
    // only 9 left. In 12 seconds you will have enough credits to perform the operation".
    throttled: {
      bucket: { capacity: 30, restorePerSecond: 1 },
      seed: { orders: 100 },
      stream: "orders",
      pageSize: 20,
      retryAfterMs: [10_000, 21_000],
      message: /not enough credits/,
    },
    missingField: {
      seed: { orders: 5 },
      field: "data.orders.data.edges.0.node.updated_at",
      message: /shiphero orders page: field "data\.orders\.data\.edges\[0\]\.node\.updated_at"/,
    },
  },
  shopify: {
    // The documented bucket; the first response's throttleStatus corrects it to the real one.
    paced: {
      bucket: { capacity: 60, restorePerSecond: 250 },
      seed: { orders: 300, customers: 100 },
      reads: [["orders", 20], ["customers", 10]],
      minRequests: 25,
    },
    // 22 points requested, about 8 left, 1 point per second.
    throttled: {
      bucket: { capacity: 30, restorePerSecond: 1 },
      seed: { orders: 100 },
      stream: "orders",
      pageSize: 20,
      retryAfterMs: [10_000, 22_000],
      message: /Throttled/,
    },
    missingField: {
      seed: { orders: 5 },
      field: "data.orders.edges.0.node.updatedAt",
      message: /shopify orders page: field "data\.orders\.edges\[0\]\.node\.updatedAt"/,
    },
  },
  lightspeed: {
    // The published window (350 requests in 300 s), paced as the adapter does: every response's
    // X-RateLimit-Limit sizes the pacer for a 300 s window, so a smaller sandbox window would
    // not be the one the adapter paces for.
    paced: {
      pacer: adapters.lightspeed.facts.rateLimit,
      seed: { orders: 150, customers: 0 },
      reads: [["orders", 10]],
      minRequests: 15,
    },
    // An HTTP date about 20 s ahead (a window of 1 request in 20 s).
    throttled: {
      bucket: { capacity: 1, restorePerSecond: 0.05 },
      seed: { orders: 100, customers: 0 },
      stream: "orders",
      pageSize: 10,
      retryAfterMs: [10_001, 21_000],
    },
    missingField: {
      seed: { orders: 30, customers: 0 },
      field: "data.3.updated_at",
      message: /lightspeed orders page: field "data(\[3\]|\.3)\.updated_at"/,
    },
  },
  quickbooks: {
    // A sliding window of 3 requests in 0.375 s, paced for 2: a request of margin for the
    // requests' transit, which jitters by tens of ms on a loaded machine.
    paced: {
      bucket: { capacity: 3, restorePerSecond: 8 },
      pacer: windowBucket(2, 3 / 8),
      seed: { orders: 300, customers: 0 },
      reads: [["orders", 30]],
      minRequests: 10,
    },
    // No Retry-After: the adapter's default, Intuit's documented 60 s.
    throttled: {
      bucket: { capacity: 1, restorePerSecond: 0.05 },
      seed: { orders: 0, customers: 100 },
      stream: "customers",
      pageSize: 10,
      retryAfterMs: [60_000, 60_000],
      message: /ThrottleExceeded/,
    },
    missingField: {
      seed: { orders: 30, customers: 0 },
      field: "QueryResponse.Invoice.2.MetaData",
      message: /quickbooks orders page: field "QueryResponse\.Invoice(\[2\]|\.2)\.MetaData"/,
    },
  },
  maystro: {
    // Paced a little under the budget (2 at 8/s): a bucket of 3 leaves the default reserve only
    // 30 ms of margin for the requests' transit, which jitters more on a loaded machine.
    paced: {
      bucket: { capacity: 3, restorePerSecond: 10 },
      pacer: { capacity: 2, restorePerSecond: 8 },
      seed: { orders: 300, customers: 10, tracked_share: 0.3 },
      reads: [["orders", 20]],
      minRequests: 15,
    },
    // Retry-After: 5 (1 request at 0.2/s).
    throttled: {
      bucket: { capacity: 1, restorePerSecond: 0.2 },
      seed: { orders: 100, customers: 10, tracked_share: 0.3 },
      stream: "orders",
      pageSize: 20,
      retryAfterMs: [5_000, 5_000],
    },
    missingField: {
      seed: { orders: 30, customers: 5, tracked_share: 0.3 },
      field: "list.results.4.last_update",
      message: /maystro orders page: field "list\.results(\[4\]|\.4)\.last_update"/,
    },
  },
};

/**
 * Reads `stream` the way the sync job does, up to the sandbox's now, keeping each page as it
 * comes (a read that fails keeps the pages before) in `into`.
 */
async function read(
  sb: SandboxControl,
  setup: Setup,
  stream: StreamName,
  into: Map<string, Stored>,
  opts: { pageSize: number; pacer?: Pacer },
): Promise<void> {
  const ctx = context(opts.pacer ? { pacer: opts.pacer } : {});
  const req = { until: await sandboxNow(sb), pageSize: opts.pageSize };
  for await (const page of pages(readerOf(setup.conn.provider, stream), ctx, setup, null, req)) {
    store(into, page.records);
  }
}

for (const [provider, contract] of Object.entries(CONTRACTS) as [ProviderName, Contract][]) {
  Deno.test(`${provider}: a small request budget is paced with no throttled request`, async () => {
    const { bucket, seed, reads, minRequests } = contract.paced;
    await withSandbox(async (sb) => {
      if (bucket) await setLimits(sb, provider, bucket);
      const setup = await seeded(sb, provider, seed);
      const pacer = new Pacer(contract.paced.pacer ?? bucket ?? adapters[provider].facts.rateLimit);
      for (const [stream, pageSize] of reads) {
        const stored = new Map<string, Stored>();
        await read(sb, setup, stream, stored, { pageSize, pacer });
        await assertMatchesTruth(sb, setup.account, stream, stored, "paced");
      }
      const stats = await apiStats(sb, provider);
      assert.equal(stats.throttled, 0, "none was throttled");
      assert.ok(stats.requests >= minRequests, `it took ${stats.requests} requests`);
      assert.ok(pacer.waitedMs > 0, "the pacer had to wait for the budget");
    });
  });

  Deno.test(`${provider}: without a pacer a tiny budget is rate_limited with the provider's wait, after the pages that fit`, async () => {
    const { bucket, seed, stream, pageSize, retryAfterMs, message } = contract.throttled;
    await withSandbox(async (sb) => {
      await setLimits(sb, provider, bucket);
      const setup = await seeded(sb, provider, seed);
      const stored = new Map<string, Stored>();
      const error = await rejection(
        read(sb, setup, stream, stored, { pageSize }),
        "expected a throttle",
      );
      assert.equal(error.code, "rate_limited");
      assert.ok(error.retryable);
      const [least, most] = retryAfterMs;
      assert.ok(
        error.retryAfterMs !== undefined && error.retryAfterMs >= least &&
          error.retryAfterMs <= most,
        `retryAfterMs ${error.retryAfterMs}, expected ${least}…${most}`,
      );
      if (message) assert.match(error.message, message);
      assert.equal(stored.size, pageSize, "the first page was read");
      assert.equal((await apiStats(sb, provider)).throttled, 1);
    });
  });

  Deno.test(`${provider}: an order missing the field its cursor needs fails the page as bad_response naming the field`, async () => {
    const { seed, field, message } = contract.missingField;
    await withSandbox(async (sb) => {
      const setup = await seeded(sb, provider, seed);
      await sb.fault({ provider, endpoint: "api", kind: "missing_field", field });
      const error = await rejection(
        read(sb, setup, "orders", new Map(), { pageSize: 50 }),
        "expected a bad page",
      );
      assert.equal(error.code, "bad_response");
      assert.match(error.message, message);
      for (const secret of Object.values(setup.account.credentials)) {
        assert.ok(!error.message.includes(secret), "no token in the message");
      }
    });
  });
}
