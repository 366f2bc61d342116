// The harness the stream-reader tests share (tests/streams_<provider>_test.ts and the table of
// tests/streams_contract_test.ts). A test starts the provider sandboxes in-process (no database),
// seeds an account's dataset, reads a stream page by page the way the sync job does (each page's
// cursor feeds the next call, until hasMore is false), keeps what a store would hold (the newest
// record per external_id), and compares that with the sandbox's truth. Only the provider, the
// stream, the page size and the seed differ between files.

import assert from "node:assert/strict";
import type { MutationSummary, TruthRecord } from "../../sandbox/data.ts";
import { startSandbox } from "../../sandbox/server.ts";
import { type SandboxAccount, SandboxControl } from "./sandbox.ts";
import { adapters } from "../../functions-shared/providers/registry.ts";
import type { BucketModel, Pacer } from "../../functions-shared/providers/pacing.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  ProviderError,
  type ProviderName,
  type StreamName,
  type StreamPage,
  type StreamReader,
  type StreamReaders,
} from "../../functions-shared/providers/types.ts";

// ---------------------------------------------------------------------------------------------
// Records: what a store holds (the sandbox's truth is sandbox/data.ts's TruthRecord)

/** The fields of a stored order or customer that these tests look at. */
export interface Stored {
  external_id: string;
  remote_updated_at: string;
  status: string | null;
  tracking_number?: string | null;
  order_number?: string | null;
  /** The record as the provider sent it. */
  raw?: unknown;
}

type Versioned = Pick<Stored, "external_id" | "remote_updated_at">;

// ---------------------------------------------------------------------------------------------
// The sandbox and an account in it

/** An account in the sandbox and the connection that reads it. */
export interface Setup {
  account: SandboxAccount;
  conn: ConnectionRef;
}

/** A setup together with the sandbox it lives in. */
export interface World extends Setup {
  sb: SandboxControl;
}

/**
 * The seed request. What it leaves out is the sandbox's default: seed 1, no orders or customers,
 * spread over 30 days, half the orders tracked.
 */
export interface SeedOptions {
  seed?: number;
  orders?: number;
  customers?: number;
  spread_days?: number;
  tracked_share?: number;
}

/** Runs `fn` against a sandbox started for it on a free port, and stops the sandbox after. */
export async function withSandbox(fn: (sb: SandboxControl) => Promise<void>): Promise<void> {
  const server = await startSandbox({ port: 0 });
  try {
    await fn(new SandboxControl(server.url));
  } finally {
    await server.close();
  }
}

/** Runs `fn` against a fresh sandbox holding one new, empty account of `provider`. */
export function withAccount(
  provider: ProviderName,
  fn: (world: World) => Promise<void>,
): Promise<void> {
  return withSandbox(async (sb) => await fn({ sb, ...(await connect(sb, provider)) }));
}

/** A new account of `provider` (its dataset empty) and a connection to it. */
export async function connect(sb: SandboxControl, provider: ProviderName): Promise<Setup> {
  const account = await sb.account(provider);
  const conn: ConnectionRef = {
    id: crypto.randomUUID(),
    provider,
    externalId: account.external_id,
    config: sb.configFor(account),
  };
  return { account, conn };
}

/** Seeds `account`'s dataset with exactly `options`. */
export async function seed(
  sb: SandboxControl,
  account: SandboxAccount,
  options: SeedOptions,
): Promise<void> {
  await sb.call("POST", dataPath(account, "seed"), options);
}

/** A new account of `provider` seeded with `options` (seed 11, over 30 days, unless they say). */
export async function seeded(
  sb: SandboxControl,
  provider: ProviderName,
  options: SeedOptions,
): Promise<Setup> {
  const setup = await connect(sb, provider);
  await seed(sb, setup.account, { seed: 11, spread_days: 30, ...options });
  return setup;
}

/** The sandbox's data API for `account`: `seed`, `mutate`, or a stream's truth. */
export function dataPath(account: SandboxAccount, action: string): string {
  return `/data/${account.provider}/${encodeURIComponent(account.external_id)}/${action}`;
}

/** `changes` random changes to `account`'s dataset, all at one instant; what they were. */
export function mutate(
  sb: SandboxControl,
  account: SandboxAccount,
  changes: number,
): Promise<MutationSummary> {
  return sb.call("POST", dataPath(account, "mutate"), { changes });
}

/** Changes at two instants a few seconds apart: a run then holds two groups of ties. */
export async function mutateTwice(
  sb: SandboxControl,
  account: SandboxAccount,
  changes: number,
): Promise<void> {
  await mutate(sb, account, changes);
  await sb.call("POST", "/clock", { advance_seconds: 3 });
  await mutate(sb, account, changes);
}

/** The provider's "now": the sandbox clock, which tests move forward. */
export async function sandboxNow(sb: SandboxControl): Promise<Date> {
  return new Date((await sb.call<{ now: string }>("GET", "/clock")).now);
}

/** Sets the rate-limit bucket the sandbox applies to `provider`'s API. */
export async function setLimits(
  sb: SandboxControl,
  provider: ProviderName,
  bucket: BucketModel,
): Promise<void> {
  await sb.call("POST", "/config", {
    limits: {
      [provider]: { capacity: bucket.capacity, restore_per_second: bucket.restorePerSecond },
    },
  });
}

/** How many API requests `provider` has had from the sandbox, and how many it throttled. */
export async function apiStats(
  sb: SandboxControl,
  provider: ProviderName,
): Promise<{ requests: number; throttled: number }> {
  const stats = await sb.call<{ api: Record<string, { requests: number; throttled: number }> }>(
    "GET",
    "/stats",
  );
  return stats.api[provider] ?? { requests: 0, throttled: 0 };
}

// ---------------------------------------------------------------------------------------------
// Reading and storing

/** What the job gives an adapter: the real fetch and clock, no app; `overrides` adds a pacer. */
export function context(overrides: Partial<AdapterContext> = {}): AdapterContext {
  return { fetch, now: () => new Date(), app: () => undefined, ...overrides };
}

/** `provider`'s reader of `stream`; fails the test if the provider has no such stream. */
export function readerOf(provider: ProviderName, stream: StreamName): StreamReader<Stored> {
  const reader = (adapters[provider].streams as StreamReaders)[stream];
  assert.ok(reader, `${provider} has no ${stream} stream`);
  return reader as StreamReader<Stored>;
}

/**
 * The job's loop, minus SQL: the pages from `cursor` up to `until`, each read from the previous
 * page's cursor, until one says there is no more.
 */
export async function* pages<R>(
  reader: StreamReader<R>,
  ctx: AdapterContext,
  setup: Setup,
  cursor: string | null,
  req: { until: Date; pageSize?: number },
): AsyncGenerator<StreamPage<R>> {
  for (let count = 1; count < 1000; count++) {
    const page = await reader(ctx, setup.conn, setup.account.credentials, {
      cursor,
      from: null,
      until: req.until,
      pageSize: req.pageSize,
    });
    yield page;
    if (!page.hasMore) return;
    cursor = page.cursor;
  }
  throw new Error("the read never caught up");
}

/** Reads `stream` from `cursor` until the reader says it has caught up with now. */
export async function readAll(
  stream: StreamName,
  ctx: AdapterContext,
  setup: Setup,
  cursor: string | null,
  pageSize = 50,
): Promise<{ records: Stored[]; cursor: string; pages: number; until: Date }> {
  const reader = readerOf(setup.conn.provider, stream);
  const until = new Date();
  const read = { records: [] as Stored[], cursor: "", pages: 0, until };
  for await (const page of pages(reader, ctx, setup, cursor, { until, pageSize })) {
    read.records.push(...page.records);
    read.cursor = page.cursor;
    read.pages++;
  }
  return read;
}

/** Newer remote updates win, as the upsert does. */
export function store<R extends Versioned>(into: Map<string, R>, records: readonly R[]): void {
  for (const r of records) {
    const have = into.get(r.external_id);
    if (!have || Date.parse(r.remote_updated_at) >= Date.parse(have.remote_updated_at)) {
      into.set(r.external_id, r);
    }
  }
}

/** What the sync job holds of one stream: the newest record per external_id, and the cursor. */
export class StreamStore<R extends Versioned> {
  readonly rows = new Map<string, R>();
  cursor: string | null = null;
}

/**
 * One run of the sync job into `into`, up to the sandbox's now: every page from `into.cursor`,
 * each stored with its cursor as it comes (a run that fails keeps the pages before). Returns every
 * page's cursor.
 */
export async function syncRun<R extends Versioned>(
  reader: StreamReader<R>,
  world: World,
  into: StreamStore<R>,
  opts: { pageSize: number; pacer?: Pacer },
): Promise<string[]> {
  const ctx = context(opts.pacer ? { pacer: opts.pacer } : {});
  const req = { until: await sandboxNow(world.sb), pageSize: opts.pageSize };
  const cursors: string[] = [];
  for await (const page of pages(reader, ctx, world, into.cursor, req)) {
    store(into.rows, page.records);
    into.cursor = page.cursor;
    cursors.push(page.cursor);
  }
  return cursors;
}

/**
 * The time cursor's promise (functions-shared/providers/cursor.ts) for a reader that pages a run
 * of ties with the API's Relay cursor: a full read of 600 orders with `pageSize`, then three
 * rounds of changes stamped at two instants (far more ties than a 40-record page holds), each read
 * from the stored cursor, leave the store equal to the truth, and a run of ties longer than a page
 * continues with the Relay `after`. Returns the store, for the provider's own checks of a record.
 */
export async function assertOrdersConvergeThroughTies<R extends Stored>(
  world: World,
  reader: StreamReader<R>,
  opts: { seed: number; pageSize: number },
): Promise<StreamStore<R>> {
  await seed(world.sb, world.account, {
    seed: opts.seed,
    orders: 600,
    customers: 50,
    tracked_share: 0.4,
  });
  const held = new StreamStore<R>();
  await syncRun(reader, world, held, { pageSize: opts.pageSize });
  await assertStoreEqualsTruth(world, "orders", held);

  for (let round = 0; round < 3; round++) {
    // Every change of a mutation has the same instant: far more ties than one page holds.
    await mutateTwice(world.sb, world.account, 150);
    const cursors = await syncRun(reader, world, held, { pageSize: 40 });
    assert.ok(
      cursors.some((cursor) => "after" in JSON.parse(cursor)),
      "a run of ties longer than a page continues with the Relay cursor",
    );
    await assertStoreEqualsTruth(world, "orders", held);
  }
  return held;
}

/** The read's error, which must be a ProviderError; fails the test if the read succeeds. */
export async function rejection(
  read: Promise<unknown>,
  expectation = "expected the read to fail",
): Promise<ProviderError> {
  try {
    await read;
  } catch (error) {
    assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
    return error;
  }
  assert.fail(expectation);
}

// ---------------------------------------------------------------------------------------------
// The truth

/** The sandbox's truth: every record of `account`'s `stream` as it is now. */
export async function truthOf(
  sb: SandboxControl,
  account: SandboxAccount,
  stream: StreamName,
): Promise<TruthRecord[]> {
  return (await sb.call<{ records: TruthRecord[] }>("GET", dataPath(account, stream))).records;
}

/** Every record of the truth is stored, as it is now, field by field; and nothing else is. */
export async function assertMatchesTruth(
  sb: SandboxControl,
  account: SandboxAccount,
  stream: StreamName,
  stored: Map<string, Stored>,
  when: string,
): Promise<void> {
  const records = await truthOf(sb, account, stream);
  assert.equal(stored.size, records.length, `${stream} ${when}: record count`);
  for (const want of records) {
    const got = stored.get(want.external_id);
    assert.ok(got, `${stream} ${when}: ${want.external_id} was never read`);
    assert.equal(
      got.remote_updated_at,
      want.updated_at,
      `${when}: updated_at of ${want.external_id}`,
    );
    assert.equal(got.status, want.status, `${when}: status of ${want.external_id}`);
    if (stream === "orders") {
      assert.equal(got.tracking_number, want.tracking_number ?? null, `${when}: tracking number`);
      assert.equal(got.order_number, want.order_number ?? null, `${when}: order number`);
    }
  }
}

/** The store's records, seen as the truth sees them, deep-equal the truth: no field more or less. */
export async function assertStoreEqualsTruth<R extends Stored>(
  world: World,
  stream: StreamName,
  held: StreamStore<R>,
): Promise<void> {
  const expected = byId(await truthOf(world.sb, world.account, stream));
  const actual = byId([...held.rows.values()].map((r) => truthView(stream, r)));
  assert.equal(actual.length, expected.length, `${stream}: number of records stored`);
  assert.deepEqual(actual, expected);
}

/** A stored record as the truth reports it: an order with its tracking and order numbers. */
function truthView(stream: StreamName, r: Stored): TruthRecord {
  const view = {
    external_id: r.external_id,
    updated_at: r.remote_updated_at,
    status: r.status ?? "",
  };
  return stream === "orders"
    ? { ...view, tracking_number: r.tracking_number, order_number: r.order_number }
    : view;
}

function byId(records: readonly TruthRecord[]): TruthRecord[] {
  return [...records].sort((a, b) => a.external_id.localeCompare(b.external_id));
}
