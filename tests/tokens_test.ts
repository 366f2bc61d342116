// Tokens on demand (getAccessToken, withAccessToken) and the rotated-elsewhere race of a claimed
// refresh, against the real local Postgres and the provider sandboxes.
//
// Assertions never print a token: tokens are compared by fingerprint (the sandbox's first 12 hex
// of sha256) or reduced to booleans before they reach a message.
import assert from "node:assert/strict";
import { claimConnection, type ConnectionRow } from "../functions-shared/db/connections.ts";
import { type RefreshTokensResult } from "../functions-shared/jobs/refresh_tokens.ts";
import {
  adapterContext,
  connectionRef,
  getAccessToken,
  LEASE_SECONDS,
  refreshClaimed,
  withAccessToken,
} from "../functions-shared/jobs/tokens.ts";
import { adapterFor } from "../functions-shared/providers/registry.ts";
import { ProviderError } from "../functions-shared/providers/types.ts";
import { testDeps } from "./helpers/stack.ts";
import { fingerprint } from "./helpers/sandbox.ts";
import {
  advance,
  assertHoldsLiveTokens,
  connectNew,
  HOUR,
  ONE_REFRESHED,
  outcomes,
  row,
  runCount,
  storedCredentials,
  sweep,
  withWorld,
  type World,
} from "./helpers/refresh_world.ts";

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

/**
 * Worker A claims a connection of `provider` and stalls past its lease; just as A's provider call
 * is about to leave, worker B (its clock past A's lease) sweeps the connection and rotates its
 * token. Returns A's outcome, B's result, and the credentials B stored.
 */
async function raceWithWorkerB(w: World, provider: Parameters<typeof connectNew>[1]) {
  const conn = await connectNew(w, provider);
  const ownerA = "worker-a";
  const claimed = await claimConnection(w.db.sql, conn.id, {
    owner: ownerA,
    now: w.clock.now(),
    leaseSeconds: LEASE_SECONDS,
  });
  assert.ok(claimed, "worker A holds the connection");
  const depsB = await testDeps(w.db, {
    now: () => new Date(w.clock.now().getTime() + (LEASE_SECONDS + 1) * 1000),
  });
  let resultB: RefreshTokensResult | undefined;
  let afterB: Record<string, string> | undefined;
  const depsA = await testDeps(w.db, {
    now: w.clock.now,
    fetch: async (input, init) => {
      // A has read the (soon stale) credentials and built its request; B rotates first.
      if (!resultB) {
        resultB = await sweep(depsB, { connection_id: conn.id, force: true });
        afterB = await storedCredentials(w, conn);
      }
      return await fetch(input, init);
    },
  });
  const outcome = await refreshClaimed(depsA, claimed, ownerA);
  return { conn, outcome, resultB: resultB!, afterB: afterB! };
}

Deno.test("a refresh that gets invalid_grant because another worker already rotated the token is skipped, not a failure", async () => {
  await withWorld(async (w) => {
    // Lightspeed's rotation revokes the old token at once: A's late call is refused.
    const { conn, outcome, resultB } = await raceWithWorkerB(w, "lightspeed");

    assert.deepEqual(outcomes(resultB), ONE_REFRESHED, "worker B rotated the token");
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

Deno.test("a refresh whose provider call succeeds after another worker rotated the credentials writes nothing and is skipped", async () => {
  await withWorld(async (w) => {
    // QuickBooks answers a just-rotated refresh token with the newest tokens (sandbox_auth_test),
    // so worker A's late call succeeds: only the version check in the write stops A from
    // writing over what B stored (tether.record_token_refresh).
    const { conn, outcome, resultB, afterB } = await raceWithWorkerB(w, "quickbooks");

    assert.deepEqual(outcomes(resultB), ONE_REFRESHED, "worker B rotated the token");
    assert.equal(outcome, "skipped");
    const kept = await storedCredentials(w, conn);
    assert.ok(
      Object.keys(afterB).every((field) => kept[field] === afterB[field]),
      "B's credentials are kept as B wrote them",
    );
    const r = await row(w, conn);
    assert.equal(r.status, "active");
    assert.equal(r.lease_owner, null);
    assert.equal(await runCount(w, conn, "skipped"), 1);
    const [skipped] = await w.db.sql<{ error: string }[]>`
      select error from tether.runs where connection_id = ${conn.id} and status = 'skipped'`;
    assert.match(skipped!.error, /credentials were replaced during the refresh/);
    const stats = await w.sandbox.stats();
    // (A's call made the sandbox issue another access token; B's, which Tether keeps, stays valid
    // until it expires: sandbox/providers/quickbooks/auth.ts, "older ones stay valid".)
    assert.equal(stats.by_account[`quickbooks/${conn.externalId}`]?.refresh_calls, 3);
  });
});
