// The connect job against the real local Postgres and the provider sandboxes: bad bodies and
// revoked credentials store nothing; reconnecting replaces credentials.
//
// Assertions never print a token: tokens are compared by fingerprint (the sandbox's first 12 hex
// of sha256) or reduced to booleans before they reach a message.
import assert from "node:assert/strict";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import { httpStatus, JobError } from "../functions-shared/errors.ts";
import {
  assertHoldsLiveTokens,
  type Conn,
  hideTokens,
  makeDue,
  newAccount,
  NOTHING,
  ONE_REFRESHED,
  outcomes,
  row,
  storedCredentials,
  sweep,
  withWorld,
  type World,
} from "./helpers/refresh_world.ts";

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
