// The `tokens` function and the client's getAccessToken (issue #14 item 1), served as on Supabase
// against the local Postgres and the provider sandboxes: single-flight refresh on demand, the
// answer's shape, the errors a caller can act on, caller auth, and no token anywhere it must not
// be. Tokens are compared by fingerprint or equality; no message prints one.
import assert from "node:assert/strict";
import { importJWK, SignJWT } from "jose";
import { TetherError } from "../client/mod.ts";
import { pushStockLevel } from "../client/examples/push_stock.ts";
import { localSecrets } from "./helpers/stack.ts";
import { fingerprint } from "./helpers/sandbox.ts";
import { connectNew, storedCredentials } from "./helpers/refresh_world.ts";
import { leakedTokens, type UserCodeWorld, withUserCodeWorld } from "./helpers/user_code.ts";

/** Inside Lightspeed's 10-minute refresh margin: the next caller must refresh first. */
async function expireSoon(w: UserCodeWorld, connectionId: string): Promise<void> {
  await w.db.sql`update tether.connections set token_expires_at = now() + interval '1 minute'
                  where id = ${connectionId}`;
}

/** Everything Tether wrote that a person reads: runs, invocations, connection errors. */
async function recordsText(w: UserCodeWorld): Promise<string> {
  const rows = await w.db.sql`
    select (select coalesce(json_agg(r), '[]') from tether.runs r)::text as runs,
           (select coalesce(json_agg(i), '[]') from tether.invocations i)::text as invocations,
           (select coalesce(json_agg(c), '[]') from tether.connections c)::text as connections`;
  return JSON.stringify(rows);
}

Deno.test("20 concurrent tokens calls for an expiring token: one refresh, all get the new token", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    const before = await storedCredentials(w, conn);
    await expireSoon(w, conn.id);
    const refreshes = await w.sandbox.refreshCalls("lightspeed", conn.externalId);

    const answers = await Promise.all(
      Array.from({ length: 20 }, () => w.tether.getAccessToken(conn.id)),
    );
    for (const answer of answers) w.tokens.add(answer.access_token);

    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes + 1);
    const tokens = new Set(answers.map((a) => a.access_token));
    assert.equal(tokens.size, 1, "all 20 callers got the same token");
    const [token] = tokens;
    assert.ok(token !== before.access_token, "a new token, not the expiring one");
    const live = await w.sandbox.inspect("lightspeed", conn.externalId);
    assert.equal(await fingerprint(token!), live.live_access_token_fingerprint);
    const { access_token: _token, expires_at, ...rest } = answers[0]!;
    // Tether dates the expiry from its own clock when the answer arrives; the sandbox from its own.
    const skewMs = new Date(expires_at!).getTime() - Date.parse(live.access_token_expires_at!);
    assert.ok(Math.abs(skewMs) < 5_000, `expires_at is the token's expiry (${skewMs} ms apart)`);
    assert.ok(new Date(expires_at!).getTime() > Date.now() + 10 * 60_000, "outside the margin");
    assert.deepEqual(rest, {
      provider: "lightspeed",
      token_type: "bearer",
      config: {
        domain_prefix: conn.externalId,
        retailer_id: (await w.db.sql`select config->>'retailer_id' as r from tether.connections
                                      where id = ${conn.id}`)[0]!.r,
        api_base_url: `${w.sandbox.url}/lightspeed`,
        api_version: "2.0",
      },
    });

    // Valid now: the next call is answered from storage, with no refresh.
    const again = await w.tether.getAccessToken(conn.id);
    assert.ok(again.access_token === token);
    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes + 1);

    // Even a caller that prefers an asynchronous answer gets the token in the answer itself:
    // it is never kept in tether.invocations.
    const asked = await fetch(`${w.functionsUrl}/tokens`, {
      method: "POST",
      headers: {
        apikey: w.secretKey,
        prefer: "respond-async",
        "content-type": "application/json",
      },
      body: JSON.stringify({ connection_id: conn.id }),
    });
    assert.equal(asked.status, 200);
    assert.equal(asked.headers.get("cache-control"), "no-store");
    assert.ok((await asked.json()).access_token === token);
    const [{ n }] = await w.db.sql<[{ n: number }]>`
      select count(*)::int as n from tether.invocations`;
    assert.equal(n, 0);

    // The token is in no record and in no line the functions logged.
    assert.deepEqual(leakedTokens(w, await recordsText(w)), []);
    assert.deepEqual(leakedTokens(w, w.functionLog.join("\n")), []);
  });
});

Deno.test("tokens: unknown connection 404, reauth_required 409 naming what to do, bad body 400", async () => {
  await withUserCodeWorld(async (w) => {
    const refusal = async (connectionId: string) => {
      try {
        await w.tether.getAccessToken(connectionId);
      } catch (err) {
        if (err instanceof TetherError) return err;
        throw err;
      }
      assert.fail("expected a refusal");
    };

    const unknown = await refusal(crypto.randomUUID());
    assert.deepEqual([unknown.status, unknown.code], [404, "unknown_connection"]);

    const malformed = await refusal("not-a-uuid");
    assert.deepEqual([malformed.status, malformed.code], [400, "invalid_body"]);
    assert.match(malformed.message, /connection_id/);

    // The account is revoked at the provider: the on-demand refresh meets invalid_grant.
    const conn = await connectNew(w, "lightspeed");
    await storedCredentials(w, conn);
    await w.sandbox.revoke("lightspeed", conn.externalId);
    await expireSoon(w, conn.id);
    const revoked = await refusal(conn.id);
    assert.deepEqual([revoked.status, revoked.code], [409, "reauth_required"]);
    assert.match(revoked.message, /reconnect the account/);
    const [row] = await w.db.sql`select status from tether.connections where id = ${conn.id}`;
    assert.equal(row!.status, "reauth_required");
    // Asked again, it says the same without calling the provider.
    const refreshes = await w.sandbox.refreshCalls("lightspeed", conn.externalId);
    assert.equal((await refusal(conn.id)).code, "reauth_required");
    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes);

    await w.db.sql`update tether.connections set status = 'disabled' where id = ${conn.id}`;
    const disabled = await refusal(conn.id);
    assert.deepEqual([disabled.status, disabled.code], [409, "connection_disabled"]);

    for (const err of [unknown, malformed, revoked, disabled]) {
      assert.deepEqual(leakedTokens(w, err.message), []);
    }
    assert.deepEqual(leakedTokens(w, await recordsText(w)), []);
    assert.deepEqual(leakedTokens(w, w.functionLog.join("\n")), []);
  });
});

Deno.test("tokens and proxy refuse callers that are not the service role, doing nothing", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await expireSoon(w, conn.id);
    const refreshes = await w.sandbox.refreshCalls("lightspeed", conn.externalId);
    const runs = async () =>
      (await w.db.sql<[{ n: number }]>`select count(*)::int as n from tether.runs`)[0].n;
    const runsBefore = await runs();
    const secrets = await localSecrets();
    const jwt = async (role: string) =>
      await new SignJWT({ role })
        .setProtectedHeader({ alg: "ES256", kid: secrets.jwtPrivateJwk.kid!, typ: "JWT" })
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(await importJWK(secrets.jwtPrivateJwk, "ES256"));
    const callers: Record<string, Record<string, string>> = {
      nobody: {},
      anon: { authorization: `Bearer ${await jwt("anon")}` },
      authenticated: { authorization: `Bearer ${await jwt("authenticated")}` },
      "a wrong key": { apikey: `${w.secretKey}x` },
      // The SQL API's key sits in pg_net's queue, which every database role can read.
      "the invoke key": { "x-tether-invoke-key": w.invokeKey },
    };
    for (const [who, headers] of Object.entries(callers)) {
      const tokens = await fetch(`${w.functionsUrl}/tokens`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ connection_id: conn.id }),
      });
      assert.equal(tokens.status, 401, `tokens, ${who}`);
      assert.equal((await tokens.json()).error, "unauthorized");
      const proxied = await fetch(`${w.functionsUrl}/proxy/${conn.id}/api/2.0/outlets`, {
        headers,
      });
      assert.equal(proxied.status, 401, `proxy, ${who}`);
      assert.equal((await proxied.json()).error, "unauthorized");
    }
    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes);
    assert.equal(await runs(), runsBefore, "nothing was run");
  });
});

Deno.test("the README's Lightspeed stock example pushes a level with getAccessToken", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await expireSoon(w, conn.id);
    const productId = crypto.randomUUID();
    const { data: outlets } = await (await w.tether.proxy(conn.id, "/api/2.0/outlets")).json();
    const outletId = outlets[0].id as string;

    await pushStockLevel(w.tether, { connectionId: conn.id, productId, outletId, amount: 17 });

    const res = await w.tether.proxy(conn.id, `/api/2.0/products/${productId}/inventory`);
    const { data } = await res.json();
    assert.deepEqual(
      data.map((r: Record<string, unknown>) => [r.outlet_id, r.current_amount, r.version]),
      [[outletId, 17, 1]],
    );

    // The README shows this very file.
    const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
    const example = await Deno.readTextFile(
      new URL("../client/examples/push_stock.ts", import.meta.url),
    );
    assert.ok(readme.includes(example.trim()), "README quotes client/examples/push_stock.ts");
  });
});
