// Token refresh end to end, against the real local Postgres and the provider sandboxes: the SQL
// API through pg_net and the served function, the sweep under concurrency and simulated months,
// failures that become readable state, on-demand tokens, the rotated-elsewhere race, connect, and
// a search for plaintext tokens in the whole database and every log line.
//
// Assertions never print a token: tokens are compared by fingerprint (the sandbox's first 12 hex
// of sha256) or reduced to booleans before they reach a message.
import assert from "node:assert/strict";
import type { z } from "zod";
import { startSandbox } from "../sandbox/server.ts";
import {
  claimConnection,
  type ConnectionRow,
  getConnection,
} from "../functions-shared/db/connections.ts";
import { connect } from "../functions-shared/db/client.ts";
import { readCredentials } from "../functions-shared/db/credentials.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import {
  RefreshTokensInput,
  type RefreshTokensResult,
  runRefreshTokens,
} from "../functions-shared/jobs/refresh_tokens.ts";
import {
  adapterContext,
  connectionRef,
  ConnectionUnavailable,
  getAccessToken,
  LEASE_SECONDS,
  refreshClaimed,
  withAccessToken,
} from "../functions-shared/jobs/tokens.ts";
import type { Deps } from "../functions-shared/deps.ts";
import { httpStatus, JobError } from "../functions-shared/errors.ts";
import { adapterFor } from "../functions-shared/providers/registry.ts";
import { ProviderError, type ProviderName } from "../functions-shared/providers/types.ts";
import {
  createTestDatabase,
  eventually,
  fixedClock,
  serveFunctionsFor,
  type TestDatabase,
  testDeps,
} from "./helpers/stack.ts";
import { fingerprint, type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";

const HOUR = 3600;
const DAY = 86_400;

// ---------------------------------------------------------------------------------------------
// One test's world: its own database, its own sandbox, a job clock that moves with the sandbox's

interface Conn {
  id: string;
  provider: ProviderName;
  externalId: string;
}

interface World {
  db: TestDatabase;
  sandbox: SandboxControl;
  clock: ReturnType<typeof fixedClock>;
  deps: Deps & { logLines: string[] };
  /** Every token the sandbox gave us and every token Tether stored, for the plaintext search. */
  tokens: Set<string>;
}

async function withWorld(
  fn: (w: World) => Promise<void>,
  opts: { realClock?: boolean } = {},
): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    const clock = fixedClock();
    const deps = await testDeps(db, opts.realClock ? {} : { now: clock.now });
    await fn({ db, sandbox: new SandboxControl(running.url), clock, deps, tokens: new Set() });
  } finally {
    await running.close();
    await db.drop();
  }
}

/** Moves the sandbox's clock and the jobs' clock together. */
async function advance(w: World, seconds: number): Promise<void> {
  w.clock.advance(seconds);
  await w.sandbox.call("POST", "/clock", { advance_seconds: seconds });
}

/** A new sandbox account; its tokens are remembered for the plaintext search and for hideTokens. */
async function newAccount(
  w: World,
  provider: ProviderName,
  kind?: "legacy" | "expiring",
): Promise<SandboxAccount> {
  const account = await w.sandbox.account(provider, kind);
  for (const value of Object.values(account.credentials)) w.tokens.add(value);
  return account;
}

/** A sandbox account registered with Tether through `connect` (which proves it with a refresh). */
async function connectNew(
  w: World,
  provider: ProviderName,
  opts: { kind?: "legacy" | "expiring"; deps?: Deps } = {},
): Promise<Conn> {
  const account = await newAccount(w, provider, opts.kind);
  const result = await runConnect(opts.deps ?? w.deps, {
    provider,
    external_id: account.external_id,
    name: `${provider} ${account.external_id}`,
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  const conn = { id: result.connection_id, provider, externalId: account.external_id };
  await storedCredentials(w, conn);
  return conn;
}

/** Decrypted credentials as Tether stores them (and remembered for the plaintext search). */
async function storedCredentials(w: World, conn: Conn): Promise<Record<string, string>> {
  const { values } = await readCredentials(w.db.sql, w.deps.vault, conn.id);
  for (const value of Object.values(values)) w.tokens.add(value);
  return values;
}

async function row(w: World, conn: Conn): Promise<ConnectionRow> {
  const found = await getConnection(w.db.sql, conn.id);
  assert.ok(found, `connection ${conn.id} exists`);
  return found;
}

/** Due now on the jobs' clock: the access token expires at this instant. */
async function makeDue(w: World, conns?: Conn[]): Promise<void> {
  const now = w.clock.now();
  if (conns === undefined) {
    await w.db.sql`update tether.connections set token_expires_at = ${now}`;
  } else {
    for (const conn of conns) {
      await w.db.sql`update tether.connections set token_expires_at = ${now} where id = ${conn.id}`;
    }
  }
}

async function runCount(
  w: World,
  conn: Conn,
  status: "succeeded" | "failed" | "skipped",
): Promise<number> {
  const [r] = await w.db.sql<{ n: number }[]>`
    select count(*)::int as n from tether.runs
     where connection_id = ${conn.id} and kind = 'refresh' and status = ${status}`;
  return r!.n;
}

/** Tether holds exactly the sandbox's live tokens for this account (compared by fingerprint). */
async function assertHoldsLiveTokens(w: World, conn: Conn): Promise<void> {
  const stored = await storedCredentials(w, conn);
  const live = await w.sandbox.inspect(conn.provider, conn.externalId);
  const storedRefresh = stored.refresh_token === undefined
    ? null
    : await fingerprint(stored.refresh_token);
  assert.equal(
    storedRefresh,
    live.live_refresh_token_fingerprint,
    `${conn.provider}/${conn.externalId}: stored refresh token is the sandbox's live one`,
  );
  const access = stored.access_token ?? stored.api_token;
  assert.ok(access !== undefined, `${conn.provider}: an access token is stored`);
  assert.equal(
    await fingerprint(access),
    live.live_access_token_fingerprint,
    `${conn.provider}/${conn.externalId}: stored access token is the sandbox's newest one`,
  );
}

/** One invocation of the refresh-tokens job, its input parsed as the function parses it. */
function sweep(deps: Deps, input: z.input<typeof RefreshTokensInput> = {}) {
  return runRefreshTokens(deps, RefreshTokensInput.parse(input));
}

/** Text for an assertion message: any token we know of is replaced, so failures never show one. */
function hideTokens(w: World, text: string): string {
  let out = text;
  for (const token of w.tokens) out = out.split(token).join("[token]");
  return out;
}

function noResult(): RefreshTokensResult {
  return { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0, duration_ms: 0 };
}

function outcomes(r: RefreshTokensResult): Omit<RefreshTokensResult, "duration_ms"> {
  const { duration_ms: _ignored, ...rest } = r;
  return rest;
}

function sumResults(results: RefreshTokensResult[]): Omit<RefreshTokensResult, "duration_ms"> {
  const total = noResult();
  for (const r of results) {
    total.refreshed += r.refreshed;
    total.failed += r.failed;
    total.reauth_required += r.reauth_required;
    total.skipped += r.skipped;
  }
  return outcomes(total);
}

const NOTHING = outcomes(noResult());
const ONE_REFRESHED = { ...NOTHING, refreshed: 1 };
const ONE_FAILED = { ...NOTHING, failed: 1 };

// ---------------------------------------------------------------------------------------------
// The full pipeline: SQL API → pg_net → Edge Function → sandbox → Postgres

Deno.test("refresh_tokens() in SQL refreshes each provider's due connection through pg_net, the refresh-tokens function and the sandbox", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["refresh-tokens"]);
    try {
      const sql = w.db.sql;
      await sql`select vault.create_secret(${served.functionsUrl}, 'tether_functions_url')`;
      await sql`select vault.create_secret(${served.secretKey}, 'tether_service_key')`;

      /** Calls an SQL API function, waits for pg_net's response, returns the function's answer. */
      const callSqlApi = async (call: string): Promise<RefreshTokensResult> => {
        const [req] = await sql.unsafe<{ id: string }[]>(`select ${call} as id`);
        const id = req!.id;
        const res = await eventually(`pg_net response to ${call}`, async () => {
          const [r] = await sql<{ status_code: number | null; content: string | null }[]>`
            select status_code, content from net._http_response where id = ${id}`;
          return r;
        }, 60_000);
        assert.equal(res.status_code, 200, `${call} answered ${hideTokens(w, res.content ?? "")}`);
        return JSON.parse(res.content ?? "null") as RefreshTokensResult;
      };

      const cases: { provider: ProviderName; kind?: "legacy" | "expiring" }[] = [
        { provider: "shiphero" },
        { provider: "shopify", kind: "expiring" },
        { provider: "shopify", kind: "legacy" },
        { provider: "lightspeed" },
        { provider: "quickbooks" },
        { provider: "maystro" },
      ];
      const conns: Conn[] = [];
      for (const c of cases) {
        const conn = await connectNew(w, c.provider, { kind: c.kind });
        conns.push(conn);
        const before = await row(w, conn);
        const liveBefore = await w.sandbox.inspect(conn.provider, conn.externalId);
        await sql`update tether.connections set token_expires_at = now() where id = ${conn.id}`;

        const answer = await callSqlApi(`public.refresh_${c.provider}_tokens()`);
        assert.deepEqual(outcomes(answer), ONE_REFRESHED, `${c.provider} ${c.kind ?? ""}`);

        const after = await row(w, conn);
        assert.equal(after.status, "active");
        assert.ok(
          after.last_token_refresh_at!.getTime() > before.last_token_refresh_at!.getTime(),
          `${c.provider}: last_token_refresh_at advanced`,
        );
        assert.equal(await runCount(w, conn, "succeeded"), 2, "the connect run and this one");
        await assertHoldsLiveTokens(w, conn);
        const liveAfter = await w.sandbox.inspect(conn.provider, conn.externalId);
        if (c.provider === "maystro" || c.kind === "legacy") {
          // Static credentials: verified, not renewed.
          assert.equal(
            liveAfter.live_access_token_fingerprint,
            liveBefore.live_access_token_fingerprint,
          );
          assert.equal(after.token_expires_at, null);
        } else {
          assert.notEqual(
            liveAfter.live_access_token_fingerprint,
            liveBefore.live_access_token_fingerprint,
            `${c.provider}: the sandbox issued a new access token`,
          );
          assert.ok(after.token_expires_at!.getTime() > Date.now(), "expiry moved ahead");
        }
      }

      // And refresh_tokens() with no provider covers every due connection at once.
      await sql`update tether.connections set token_expires_at = now()`;
      const all = await callSqlApi("public.refresh_tokens()");
      assert.deepEqual(outcomes(all), { ...NOTHING, refreshed: conns.length });
      for (const conn of conns) {
        assert.equal(await runCount(w, conn, "succeeded"), 3);
        await assertHoldsLiveTokens(w, conn);
      }
    } finally {
      await served.stop();
    }
  }, { realClock: true });
});

// ---------------------------------------------------------------------------------------------
// Provider quirks and concurrency

Deno.test("a ShipHero refresh that returns no refresh_token keeps the stored one, and the next refresh works with it", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "shiphero");
    const original = await storedCredentials(w, conn);
    assert.ok(original.refresh_token, "a refresh token is stored");
    const originalRefresh = await fingerprint(original.refresh_token);
    const accessSeen = new Set([await fingerprint(original.access_token!)]);

    for (let i = 1; i <= 2; i++) {
      await advance(w, HOUR);
      const result = await sweep(w.deps, { connection_id: conn.id, force: true });
      assert.deepEqual(outcomes(result), ONE_REFRESHED, `refresh ${i}`);
      const stored = await storedCredentials(w, conn);
      assert.equal(await fingerprint(stored.refresh_token!), originalRefresh, "refresh token kept");
      const access = await fingerprint(stored.access_token!);
      assert.ok(!accessSeen.has(access), `refresh ${i} stored a new access token`);
      accessSeen.add(access);
      await assertHoldsLiveTokens(w, conn);
      const r = await row(w, conn);
      assert.equal(r.status, "active");
      assert.equal(r.token_expires_at?.getTime(), w.clock.now().getTime() + 2_419_200_000);
    }
    // connect + two refreshes, all presenting the one static refresh token.
    const stats = await w.sandbox.stats();
    assert.deepEqual(stats.by_account[`shiphero/${conn.externalId}`], {
      refresh_calls: 3,
      by_refresh_token: { [originalRefresh]: 3 },
    });
  });
});

Deno.test("20 concurrent sweeps over 50 due rotating-token connections refresh each exactly once and keep the newest refresh token", async () => {
  await withWorld(async (w) => {
    const providers: ProviderName[] = ["shopify", "lightspeed", "quickbooks"];
    const conns: Conn[] = [];
    for (let i = 0; i < 50; i++) {
      conns.push(
        await connectNew(w, providers[i % 3]!, { kind: i % 3 === 0 ? "expiring" : undefined }),
      );
    }
    await w.sandbox.call("DELETE", "/stats");
    await advance(w, 60);
    await makeDue(w);

    const results = await Promise.all(
      Array.from({ length: 20 }, () => sweep(w.deps, {})),
    );

    assert.deepEqual(sumResults(results), { ...NOTHING, refreshed: 50 });
    const stats = await w.sandbox.stats();
    assert.equal(stats.refresh_calls, 50, "exactly one provider refresh per connection");
    assert.equal(stats.unknown_token_refresh_calls, 0);
    for (const conn of conns) {
      assert.equal(
        stats.by_account[`${conn.provider}/${conn.externalId}`]?.refresh_calls,
        1,
        `${conn.provider}/${conn.externalId} refreshed once`,
      );
      const r = await row(w, conn);
      assert.equal(r.status, "active");
      assert.equal(r.consecutive_failures, 0);
      assert.equal(r.lease_owner, null);
      assert.equal(await runCount(w, conn, "succeeded"), 2);
      await assertHoldsLiveTokens(w, conn);
    }
    // Nothing is left due: another sweep does nothing.
    assert.deepEqual(outcomes(await sweep(w.deps, {})), NOTHING);
  });
});

Deno.test("the sweep alone keeps idle QuickBooks and Lightspeed connections alive for 200 days; without it Lightspeed's refresh token dies after 30 idle days", async () => {
  await withWorld(async (w) => {
    // Access tokens that outlive the 30-day idle window: only the idle policy can save Lightspeed.
    await w.sandbox.call("POST", "/config", { lightspeed: { access_token_seconds: 60 * DAY } });
    const quickbooks = await connectNew(w, "quickbooks");
    const lightspeed = await connectNew(w, "lightspeed");

    const total = noResult();
    for (let step = 1; step <= 400; step++) {
      await advance(w, 12 * HOUR);
      const r = await sweep(w.deps, {});
      total.refreshed += r.refreshed;
      total.failed += r.failed;
      total.reauth_required += r.reauth_required;
      total.skipped += r.skipped;
    }
    // QuickBooks' hour-long access token is due at every 12 h step; Lightspeed's refresh token
    // (30 idle days, renewed 7 days ahead) every 23 days = 46 steps: steps 46, 92, …, 368.
    assert.deepEqual(outcomes(total), { ...NOTHING, refreshed: 400 + 8 });
    assert.equal(await runCount(w, quickbooks, "succeeded"), 1 + 400);
    assert.equal(await runCount(w, lightspeed, "succeeded"), 1 + 8);

    for (const conn of [quickbooks, lightspeed]) {
      assert.equal((await row(w, conn)).status, "active");
      await assertHoldsLiveTokens(w, conn);
      const forced = await sweep(w.deps, { connection_id: conn.id, force: true });
      assert.deepEqual(outcomes(forced), ONE_REFRESHED, `${conn.provider} still refreshes`);
      await assertHoldsLiveTokens(w, conn);
    }

    // Without the sweep: 31 idle days later the sandbox rejects Lightspeed's refresh token.
    await advance(w, 31 * DAY);
    const late = await sweep(w.deps, { connection_id: lightspeed.id, force: true });
    assert.deepEqual(outcomes(late), { ...NOTHING, reauth_required: 1 });
    const dead = await row(w, lightspeed);
    assert.equal(dead.status, "reauth_required");
    assert.match(dead.last_error ?? "", /invalid_grant/);
  });
});

Deno.test("a forced refresh of one connection reaches the provider once per invocation, even when a worker's claim is delayed until after it failed", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "quickbooks");
    await w.sandbox.fault({ provider: "quickbooks", kind: "5xx" });
    const calls = await w.sandbox.refreshCalls("quickbooks", conn.externalId);
    // As when the pool is busy: every claim after the first reaches Postgres only once the first
    // worker has tried the connection, failed, and released it.
    const handled = () =>
      eventually("the first attempt to be recorded", async () => {
        const [r] = await w.db.sql<{ n: number }[]>`
          select count(*)::int as n from tether.runs
           where connection_id = ${conn.id} and status = 'failed'`;
        const released = (await row(w, conn)).lease_owner === null;
        return r!.n === 1 && released ? true : undefined;
      });
    let claims = 0;
    const db = new Proxy(w.db.sql, {
      apply(target, self, args: unknown[]) {
        const strings = args[0];
        const isClaim = Array.isArray(strings) && String(strings[0]).includes("with policy as");
        if (!isClaim || ++claims === 1) return Reflect.apply(target, self, args);
        return handled().then(() => Reflect.apply(target, self, args));
      },
    });

    const result = await sweep({ ...w.deps, db }, { connection_id: conn.id, force: true });

    assert.ok(claims > 1, "other workers did claim");
    assert.deepEqual(outcomes(result), ONE_FAILED);
    assert.equal(await w.sandbox.refreshCalls("quickbooks", conn.externalId), calls + 1);
    const r = await row(w, conn);
    assert.equal(r.status, "error");
    assert.equal(r.consecutive_failures, 1);
    assert.equal(r.lease_owner, null);
    assert.equal(await runCount(w, conn, "failed"), 1);
    assert.equal(await runCount(w, conn, "succeeded"), 1, "only the connect run");
  });
});

Deno.test("the sweep works from the first queries of a freshly started function's connection pool", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "shiphero");
    // Each deployed invocation may start with an empty pool, and its workers claim at once while
    // the connections are still opening. Forty fresh pools, one due connection each time.
    for (let round = 1; round <= 40; round++) {
      await advance(w, HOUR);
      const pool = connect(w.db.url, { name: "tether-refresh-tokens" });
      try {
        const result = await sweep({ ...w.deps, db: pool }, {
          connection_id: conn.id,
          force: true,
        });
        assert.deepEqual(outcomes(result), ONE_REFRESHED, `round ${round}`);
      } finally {
        await pool.end();
      }
    }
    assert.equal(await runCount(w, conn, "succeeded"), 41);
    await assertHoldsLiveTokens(w, conn);
  });
});

// ---------------------------------------------------------------------------------------------
// Failures become state a person can read (rule 8)

Deno.test("a transient failure backs off (error, next attempt in 30 s then 60 s, no retry before it) and recovers by itself", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "shopify", { kind: "expiring" });
    await w.sandbox.fault({ provider: "shopify", kind: "5xx", count: 2 });
    await makeDue(w, [conn]);

    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_FAILED);
    let r = await row(w, conn);
    assert.equal(r.status, "error");
    assert.equal(r.consecutive_failures, 1);
    assert.equal(r.next_attempt_at?.getTime(), w.clock.now().getTime() + 30_000);
    assert.match(r.last_error ?? "", /shopify token endpoint failed with HTTP 503/);
    assert.equal(r.lease_owner, null);
    const attempts = await w.sandbox.refreshCalls("shopify", conn.externalId);

    await advance(w, 29);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), NOTHING, "not before 30 s");
    assert.equal(await w.sandbox.refreshCalls("shopify", conn.externalId), attempts);

    await advance(w, 1);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_FAILED, "retried at 30 s");
    r = await row(w, conn);
    assert.equal(r.status, "error");
    assert.equal(r.consecutive_failures, 2);
    assert.equal(r.next_attempt_at?.getTime(), w.clock.now().getTime() + 60_000);

    await advance(w, 59);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), NOTHING, "not before 60 s");
    await advance(w, 1);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_REFRESHED, "recovered");
    r = await row(w, conn);
    assert.equal(r.status, "active");
    assert.equal(r.consecutive_failures, 0);
    assert.equal(r.next_attempt_at, null);
    assert.equal(r.last_error, null);
    assert.equal(await runCount(w, conn, "failed"), 2);
    assert.equal(await runCount(w, conn, "succeeded"), 2);
    await assertHoldsLiveTokens(w, conn);
  });
});

Deno.test("a 429 with Retry-After 120 puts the next attempt 120 s away, not the 30 s backoff", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await w.sandbox.fault({ provider: "lightspeed", kind: "429", retry_after: 120 });
    await makeDue(w, [conn]);

    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_FAILED);
    const r = await row(w, conn);
    assert.equal(r.status, "error");
    assert.equal(r.consecutive_failures, 1);
    assert.ok(r.next_attempt_at!.getTime() >= w.clock.now().getTime() + 120_000);
    assert.equal(r.next_attempt_at!.getTime(), w.clock.now().getTime() + 120_000);
    assert.match(r.last_error ?? "", /HTTP 429.*retry after 120 s/);

    await advance(w, 119);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), NOTHING);
    await advance(w, 1);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_REFRESHED);
    await assertHoldsLiveTokens(w, conn);
  });
});

Deno.test("invalid_grant makes the connection reauth_required with a message to reconnect, and the sweep skips it afterwards", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "quickbooks");
    await w.sandbox.revoke("quickbooks", conn.externalId);
    await makeDue(w, [conn]);

    assert.deepEqual(outcomes(await sweep(w.deps, {})), {
      ...NOTHING,
      reauth_required: 1,
    });
    const r = await row(w, conn);
    assert.equal(r.status, "reauth_required");
    assert.equal(r.next_attempt_at, null);
    assert.equal(r.lease_owner, null);
    assert.match(r.last_error ?? "", /invalid_grant/);
    assert.match(r.last_error ?? "", /reconnect the QuickBooks account/);
    const attempts = await w.sandbox.refreshCalls("quickbooks", conn.externalId);

    await advance(w, DAY);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), NOTHING);
    assert.deepEqual(outcomes(await sweep(w.deps, { force: true })), NOTHING);
    assert.equal(await w.sandbox.refreshCalls("quickbooks", conn.externalId), attempts);
    await assert.rejects(getAccessToken(w.deps, conn.id), (err: unknown) => {
      assert.ok(err instanceof ConnectionUnavailable);
      assert.match(err.message, /reauth_required.*reconnect/);
      return true;
    });
    assert.equal((await row(w, conn)).status, "reauth_required");
  });
});

Deno.test("a refresh response without access_token is an error that names the field and the provider, and the next attempt recovers", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "shiphero");
    await w.sandbox.fault({ provider: "shiphero", kind: "missing_field", field: "access_token" });
    await makeDue(w, [conn]);

    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_FAILED);
    const r = await row(w, conn);
    assert.equal(r.status, "error");
    assert.equal(r.consecutive_failures, 1);
    assert.equal(r.next_attempt_at?.getTime(), w.clock.now().getTime() + 30_000);
    assert.match(r.last_error ?? "", /^shiphero refresh response: field "access_token"/);
    assert.doesNotMatch(r.last_error ?? "", /missing tokens/);
    const [run] = await w.db.sql<{ error: string; details: { code?: string } }[]>`
      select error, details from tether.runs
       where connection_id = ${conn.id} and status = 'failed'`;
    assert.equal(run?.details.code, "bad_response");
    assert.match(run?.error ?? "", /field "access_token"/);

    await advance(w, 30);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_REFRESHED);
    assert.equal((await row(w, conn)).status, "active");
    await assertHoldsLiveTokens(w, conn);
  });
});

// ---------------------------------------------------------------------------------------------
// Tokens on demand

Deno.test("getAccessToken returns the stored token outside the refresh margin and refreshes inside it", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "shopify", { kind: "expiring" }); // 3600 s, margin 15 min
    const first = await storedCredentials(w, conn);
    const calls = await w.sandbox.refreshCalls("shopify", conn.externalId);

    let got = await getAccessToken(w.deps, conn.id);
    assert.ok(got.token === first.access_token, "the stored token, untouched");
    await advance(w, 44 * 60); // 16 minutes left
    got = await getAccessToken(w.deps, conn.id);
    assert.ok(got.token === first.access_token, "still outside the margin");
    assert.equal(await w.sandbox.refreshCalls("shopify", conn.externalId), calls);

    await advance(w, 2 * 60); // 14 minutes left
    got = await getAccessToken(w.deps, conn.id);
    assert.ok(got.token !== first.access_token, "a new token inside the margin");
    assert.equal(await w.sandbox.refreshCalls("shopify", conn.externalId), calls + 1);
    const live = await w.sandbox.inspect("shopify", conn.externalId);
    assert.equal(await fingerprint(got.token), live.live_access_token_fingerprint);
    assert.equal(got.connection.token_expires_at?.getTime(), w.clock.now().getTime() + 3_600_000);
    await assertHoldsLiveTokens(w, conn);

    // The fresh token is cached again.
    const again = await getAccessToken(w.deps, conn.id);
    assert.ok(again.token === got.token);
    assert.equal(await w.sandbox.refreshCalls("shopify", conn.externalId), calls + 1);
  });
});

Deno.test("withAccessToken refreshes once and retries once after a 401, and gives up after a second 401", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "quickbooks");
    const adapter = adapterFor("quickbooks");
    const seen: string[] = [];
    const verify = (creds: Record<string, string>, connection: ConnectionRow) => {
      seen.push(creds.access_token ?? "");
      return adapter.verify(adapterContext(w.deps), connectionRef(connection), creds);
    };

    // The provider expired the access token early (its clock ran ahead of ours): the first call
    // gets a 401, the token is refreshed, the retry succeeds.
    await w.sandbox.call("POST", "/clock", { advance_seconds: HOUR + 60 });
    const calls = await w.sandbox.refreshCalls("quickbooks", conn.externalId);
    await withAccessToken(w.deps, conn.id, verify);
    assert.equal(seen.length, 2, "called twice");
    assert.ok(seen[0] !== seen[1], "the retry used a new token");
    assert.equal(await w.sandbox.refreshCalls("quickbooks", conn.externalId), calls + 1);
    await assertHoldsLiveTokens(w, conn);

    // Two 401s in a row: one refresh, one retry, then the 401 is the caller's.
    seen.length = 0;
    await w.sandbox.fault({
      provider: "quickbooks",
      endpoint: "api",
      kind: "invalid_grant",
      count: 2,
    });
    await assert.rejects(withAccessToken(w.deps, conn.id, verify), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.code, "unauthorized");
      return true;
    });
    assert.equal(seen.length, 2, "one retry only");
    assert.equal(await w.sandbox.refreshCalls("quickbooks", conn.externalId), calls + 2);
    assert.equal((await row(w, conn)).status, "active");
  });
});

// ---------------------------------------------------------------------------------------------
// Rule 1: rotated elsewhere is not a failure

Deno.test("a refresh that gets invalid_grant because another worker already rotated the token is skipped, not a failure", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed"); // rotation revokes the old token at once
    // Worker A claims the connection, then stalls past its lease before its provider call lands.
    const ownerA = "worker-a";
    const claimed = await claimConnection(w.db.sql, conn.id, {
      owner: ownerA,
      now: w.clock.now(),
      leaseSeconds: LEASE_SECONDS,
    });
    assert.ok(claimed, "worker A holds the connection");
    // Worker B runs after A's lease has lapsed and rotates the token.
    const depsB = await testDeps(w.db, {
      now: () => new Date(w.clock.now().getTime() + (LEASE_SECONDS + 1) * 1000),
    });
    let resultB: RefreshTokensResult | undefined;
    const depsA = await testDeps(w.db, {
      now: w.clock.now,
      fetch: async (input, init) => {
        // A has read the (soon stale) credentials and built its request; B rotates first.
        resultB ??= await sweep(depsB, { connection_id: conn.id, force: true });
        return await fetch(input, init);
      },
    });

    const outcome = await refreshClaimed(depsA, claimed, ownerA);

    assert.deepEqual(outcomes(resultB!), ONE_REFRESHED, "worker B rotated the token");
    assert.equal(outcome, "skipped");
    const r = await row(w, conn);
    assert.equal(r.status, "active");
    assert.equal(r.consecutive_failures, 0);
    assert.equal(r.last_error, null);
    assert.equal(r.lease_owner, null);
    assert.equal(await runCount(w, conn, "failed"), 0);
    assert.equal(await runCount(w, conn, "skipped"), 1);
    await assertHoldsLiveTokens(w, conn);
    // A really did present the stale token and was refused.
    const stats = await w.sandbox.stats();
    assert.equal(stats.by_account[`lightspeed/${conn.externalId}`]?.refresh_calls, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// connect

async function countRows(
  w: World,
): Promise<{ connections: number; credentials: number; runs: number }> {
  const [r] = await w.db.sql<{ connections: number; credentials: number; runs: number }[]>`
    select (select count(*)::int from tether.connections) as connections,
           (select count(*)::int from tether.credentials) as credentials,
           (select count(*)::int from tether.runs) as runs`;
  return r!;
}

async function rejectsJobError(
  w: World,
  promise: Promise<unknown>,
  status: number,
  code: string,
): Promise<JobError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof JobError,
    `expected a JobError ${status}, got ${hideTokens(w, String(caught))}`,
  );
  assert.equal(httpStatus(caught.code), status, hideTokens(w, caught.message));
  assert.equal(caught.code, code);
  return caught;
}

Deno.test("connect rejects a bad body with 400 naming the field, and stores nothing", async () => {
  await withWorld(async (w) => {
    const shopify = await newAccount(w, "shopify");
    const base = `${w.sandbox.url}/shopify`;
    const noShop = await rejectsJobError(
      w,
      runConnect(w.deps, {
        provider: "shopify",
        external_id: shopify.external_id,
        name: "no shop",
        credentials: shopify.credentials,
        config: { auth_base_url: base, api_base_url: base },
      }),
      400,
      "invalid_body",
    );
    assert.match(noShop.message, /field "config\.shop"/);

    const lightspeed = await newAccount(w, "lightspeed");
    const noRefresh = await rejectsJobError(
      w,
      runConnect(w.deps, {
        provider: "lightspeed",
        external_id: lightspeed.external_id,
        name: "no refresh token",
        credentials: { access_token: lightspeed.credentials.access_token },
        config: w.sandbox.configFor(lightspeed),
      }),
      400,
      "invalid_body",
    );
    assert.match(noRefresh.message, /field "credentials\.refresh_token"/);
    assert.ok(!noRefresh.message.includes(lightspeed.credentials.access_token!));
    assert.deepEqual(await countRows(w), { connections: 0, credentials: 0, runs: 0 });
  });
});

Deno.test("connect rejects revoked credentials with 422 and stores nothing", async () => {
  await withWorld(async (w) => {
    const account = await newAccount(w, "quickbooks");
    await w.sandbox.revoke("quickbooks", account.external_id);
    const err = await rejectsJobError(
      w,
      runConnect(w.deps, {
        provider: "quickbooks",
        external_id: account.external_id,
        name: "revoked",
        credentials: account.credentials,
        config: w.sandbox.configFor(account),
      }),
      422,
      "credentials_rejected",
    );
    assert.match(err.message, /invalid_grant/);
    for (const value of Object.values(account.credentials)) {
      assert.ok(!err.message.includes(value), "the message holds no token");
    }
    assert.deepEqual(await countRows(w), { connections: 0, credentials: 0, runs: 0 });
  });
});

Deno.test("reconnecting a reauth_required connection replaces its credentials and makes it active again", async () => {
  await withWorld(async (w) => {
    const first = await newAccount(w, "lightspeed");
    const input = {
      provider: "lightspeed" as const,
      external_id: "acme",
      name: "Acme",
      credentials: first.credentials,
      config: w.sandbox.configFor(first),
    };
    const connected = await runConnect(w.deps, input);
    const conn: Conn = { id: connected.connection_id, provider: "lightspeed", externalId: "acme" };
    const before = await storedCredentials(w, conn);
    await w.sandbox.fault({ provider: "lightspeed", kind: "invalid_grant" });
    await makeDue(w, [conn]);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), {
      ...NOTHING,
      reauth_required: 1,
    });
    assert.equal((await row(w, conn)).status, "reauth_required");

    // The person authorises again and gets a new grant (a new sandbox account plays it).
    const second = await newAccount(w, "lightspeed");
    const again = await runConnect(w.deps, {
      ...input,
      credentials: second.credentials,
      config: w.sandbox.configFor(second),
    });
    assert.equal(again.connection_id, conn.id, "the same connection");
    assert.equal(again.status, "active");
    const r = await row(w, conn);
    assert.equal(r.status, "active");
    assert.equal(r.consecutive_failures, 0);
    assert.equal(r.last_error, null);
    assert.equal(r.next_attempt_at, null);
    const after = await storedCredentials(w, conn);
    assert.ok(after.refresh_token !== before.refresh_token, "the refresh token was replaced");
    assert.ok(after.access_token !== before.access_token, "the access token was replaced");
    await assertHoldsLiveTokens(w, { ...conn, externalId: second.external_id });

    // And the sweep takes it up again.
    await makeDue(w, [conn]);
    assert.deepEqual(outcomes(await sweep(w.deps, {})), ONE_REFRESHED);
    await assertHoldsLiveTokens(w, { ...conn, externalId: second.external_id });
  });
});

// ---------------------------------------------------------------------------------------------
// No plaintext token anywhere

Deno.test("no token appears in plaintext in a pg_dump of the database, in run records or in any log line", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["refresh-tokens", "connect"]);
    try {
      const sql = w.db.sql;
      await sql`select vault.create_secret(${served.functionsUrl}, 'tether_functions_url')`;
      await sql`select vault.create_secret(${served.secretKey}, 'tether_service_key')`;
      const conns: Conn[] = [];

      // Two connections through the served connect function, the rest through the job.
      for (const provider of ["shiphero", "quickbooks"] as const) {
        const account = await newAccount(w, provider);
        const res = await fetch(`${served.functionsUrl}/connect`, {
          method: "POST",
          headers: { apikey: served.secretKey, "content-type": "application/json" },
          body: JSON.stringify({
            provider,
            external_id: account.external_id,
            name: `${provider} via HTTP`,
            credentials: account.credentials,
            config: w.sandbox.configFor(account),
          }),
        });
        const text = await res.text();
        assert.equal(res.status, 200, `connect answered HTTP ${res.status}`);
        for (const token of w.tokens) {
          assert.ok(!text.includes(token), "connect's answer holds no token");
        }
        const body = JSON.parse(text) as { connection_id: string };
        conns.push({ id: body.connection_id, provider, externalId: account.external_id });
      }
      conns.push(await connectNew(w, "shopify", { kind: "expiring" }));
      conns.push(await connectNew(w, "shopify", { kind: "legacy" }));
      conns.push(await connectNew(w, "lightspeed"));
      conns.push(await connectNew(w, "maystro"));
      // A rejected connect over HTTP: its error message must not echo the token either.
      const revoked = await newAccount(w, "lightspeed");
      await w.sandbox.revoke("lightspeed", revoked.external_id);
      const rejected = await fetch(`${served.functionsUrl}/connect`, {
        method: "POST",
        headers: { apikey: served.secretKey, "content-type": "application/json" },
        body: JSON.stringify({
          provider: "lightspeed",
          external_id: revoked.external_id,
          name: "revoked",
          credentials: revoked.credentials,
          config: w.sandbox.configFor(revoked),
        }),
      });
      const rejectedText = await rejected.text();
      assert.equal(rejected.status, 422);
      for (const token of w.tokens) assert.ok(!rejectedText.includes(token), "422 holds no token");
      for (const conn of conns) await storedCredentials(w, conn);

      // Refresh everything through the SQL API, twice.
      for (let round = 1; round <= 2; round++) {
        await sql`update tether.connections set token_expires_at = now()`;
        const [req] = await sql<{ id: string }[]>`select public.refresh_tokens() as id`;
        const res = await eventually("the refresh-tokens response", async () => {
          const [r] = await sql<{ status_code: number | null; content: string | null }[]>`
            select status_code, content from net._http_response where id = ${req!.id}`;
          return r;
        }, 60_000);
        assert.equal(res.status_code, 200);
        const answer = JSON.parse(res.content ?? "null") as RefreshTokensResult;
        assert.equal(answer.refreshed, conns.length, `round ${round}`);
        for (const conn of conns) await storedCredentials(w, conn);
      }
      // Failures leave messages in runs and logs: a malformed answer, a 503, an invalid_grant.
      const [shiphero, quickbooks, , , lightspeed] = conns;
      await w.sandbox.fault({ provider: "shiphero", kind: "missing_field", field: "access_token" });
      await w.sandbox.fault({ provider: "quickbooks", kind: "5xx" });
      await w.sandbox.fault({ provider: "lightspeed", kind: "invalid_grant" });
      for (const conn of [shiphero!, quickbooks!, lightspeed!]) {
        const r = await sweep(w.deps, { connection_id: conn.id, force: true });
        assert.equal(r.refreshed, 0, `${conn.provider} failed as arranged`);
      }
      // And an on-demand refresh after a 401.
      await w.sandbox.fault({ provider: "shopify", endpoint: "api", kind: "invalid_grant" });
      const shopifyLegacy = conns[3]!;
      await withAccessToken(
        w.deps,
        shopifyLegacy.id,
        (creds, connection) =>
          adapterFor("shopify").verify(adapterContext(w.deps), connectionRef(connection), creds),
      );
      for (const conn of conns) await storedCredentials(w, conn);
      for (const value of Object.values(w.deps.env.apps)) w.tokens.add(value.clientSecret);

      assert.ok(w.tokens.size >= 20, `collected ${w.tokens.size} tokens`);
      const pgDump = await new Deno.Command("/usr/lib/postgresql/15/bin/pg_dump", {
        args: [w.db.url],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(pgDump.code, 0, new TextDecoder().decode(pgDump.stderr));
      const dump = new TextDecoder().decode(pgDump.stdout);
      // The dump does hold the data: connections, ciphertexts, run errors.
      for (const conn of conns) assert.ok(dump.includes(conn.externalId), "dump has the rows");
      assert.match(dump, /v1\.k1\./);
      assert.match(dump, /field "access_token"/);
      const leaks = (text: string) => [...w.tokens].filter((t) => text.includes(t)).length;
      assert.equal(leaks(dump), 0, "tokens in the pg_dump");
      assert.ok(!dump.includes(served.secretKey), "the service key is not in the dump");

      const runs = await sql<{ error: string | null; details: unknown }[]>`
        select error, details from tether.runs`;
      assert.ok(runs.some((r) => r.error !== null), "some runs carry errors");
      assert.equal(leaks(JSON.stringify(runs)), 0, "tokens in tether.runs");
      assert.ok(w.deps.logLines.length > 0 && served.logLines.length > 0, "both logs have lines");
      assert.equal(leaks(w.deps.logLines.join("\n")), 0, "tokens in the job's log lines");
      assert.equal(leaks(served.logLines.join("\n")), 0, "tokens in the functions' log lines");
    } finally {
      await served.stop();
    }
  }, { realClock: true });
});
