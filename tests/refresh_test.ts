// Token refresh end to end, against the real local Postgres and the provider sandboxes: the SQL
// API through pg_net and the served function, the sweep under concurrency and simulated months,
// and failures that become readable state. Tokens on demand are in tokens_test.ts, connect in
// connect_test.ts, the plaintext search in no_plaintext_test.ts.
//
// Assertions never print a token: tokens are compared by fingerprint (the sandbox's first 12 hex
// of sha256) or reduced to booleans before they reach a message.
import assert from "node:assert/strict";
import { connect } from "../functions-shared/db/client.ts";
import {
  RefreshTokensInput,
  type RefreshTokensResult,
  runRefreshTokens,
} from "../functions-shared/jobs/refresh_tokens.ts";
import { ConnectionUnavailable, getAccessToken } from "../functions-shared/jobs/tokens.ts";
import { type ProviderName } from "../functions-shared/providers/types.ts";
import { eventually, invocationOf, serveFunctionsFor, storeVaultSecrets } from "./helpers/stack.ts";
import { fingerprint } from "./helpers/sandbox.ts";
import {
  advance,
  assertHoldsLiveTokens,
  type Conn,
  connectNew,
  DAY,
  hideTokens,
  HOUR,
  makeDue,
  noResult,
  NOTHING,
  ONE_FAILED,
  ONE_REFRESHED,
  outcomes,
  row,
  runCount,
  storedCredentials,
  sumResults,
  sweep,
  withWorld,
} from "./helpers/refresh_world.ts";

// ---------------------------------------------------------------------------------------------
// The full pipeline: SQL API → pg_net → Edge Function → sandbox → Postgres

Deno.test("refresh_tokens() in SQL refreshes each provider's due connection through pg_net, the refresh-tokens function and the sandbox", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["refresh-tokens"]);
    try {
      const sql = w.db.sql;
      await storeVaultSecrets(sql, served);

      /** Calls an SQL API function, waits for pg_net's response, returns the function's answer. */
      const callSqlApi = async (call: string): Promise<RefreshTokensResult> => {
        const [req] = await sql.unsafe<{ id: string }[]>(`select ${call} as id`);
        const done = await invocationOf<RefreshTokensResult>(sql, req!.id);
        assert.equal(done.status, "succeeded", `${call}: ${hideTokens(w, done.error ?? "")}`);
        return done.result;
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

Deno.test("a sweep claims due connections a batch at a time: 25 connections in 4 claim statements, each refreshed once", async () => {
  await withWorld(async (w) => {
    const conns: Conn[] = [];
    for (let i = 0; i < 25; i++) conns.push(await connectNew(w, "shiphero"));
    await w.sandbox.call("DELETE", "/stats");
    await makeDue(w);
    let claims = 0;
    const db = new Proxy(w.db.sql, {
      apply(target, self, args: unknown[]) {
        const strings = args[0];
        if (Array.isArray(strings) && String(strings[0]).includes("with policy as")) claims++;
        return Reflect.apply(target, self, args);
      },
    });

    const result = await sweep({ ...w.deps, db }, {});

    assert.deepEqual(outcomes(result), { ...NOTHING, refreshed: 25 });
    // Batches of 10 (the sweep's concurrency): 10, 10, 5, then one that finds nothing due.
    assert.equal(claims, 4, "one claim statement per batch, not one per connection");
    const stats = await w.sandbox.stats();
    assert.equal(stats.refresh_calls, 25, "exactly one provider refresh per connection");
    for (const conn of conns) {
      assert.equal((await row(w, conn)).lease_owner, null);
      assert.equal(await runCount(w, conn, "succeeded"), 2);
    }
  });
});

Deno.test("where the runtime cannot measure CPU, a sweep stops taking connections once its estimated CPU reaches the budget, and the next continues", async () => {
  await withWorld(async (w) => {
    const conns: Conn[] = [];
    for (let i = 0; i < 6; i++) conns.push(await connectNew(w, "lightspeed"));
    await advance(w, 60);
    await makeDue(w);
    // The tests' clock has no cpuMs(), as the Edge Runtime's Deno cannot tell: the budget is
    // spent by the estimate alone, 40 ms a refresh against 100 ms.
    assert.equal(w.deps.clock.cpuMs, undefined);
    const deps = { ...w.deps, env: { ...w.deps.env, cpuBudgetMs: 100, cpuMsPerRefresh: 40 } };
    const oneAtATime = () =>
      runRefreshTokens(deps, RefreshTokensInput.parse({}), { concurrency: 1 });

    assert.deepEqual(outcomes(await oneAtATime()), { ...NOTHING, refreshed: 3 });
    assert.deepEqual(outcomes(await oneAtATime()), { ...NOTHING, refreshed: 3 });
    assert.deepEqual(outcomes(await oneAtATime()), NOTHING);
    for (const conn of conns) assert.equal(await runCount(w, conn, "succeeded"), 2);
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
