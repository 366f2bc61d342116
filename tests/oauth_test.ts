// OAuth connect end to end: the served `connect` function, an in-process sandbox playing each
// provider's authorize and token endpoints, and the real local Postgres. Redirects are followed by
// hand (`redirect: "manual"`), as a browser would follow them, so every hop can be inspected or
// tampered with. The callback URL the providers send the browser to is the public one
// (TETHER_PUBLIC_FUNCTIONS_URL); the test replays it against the local gateway.
import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { type ConnectionRow } from "../functions-shared/db/connections.ts";
import { readCredentials } from "../functions-shared/db/credentials.ts";
import { signState } from "../functions-shared/oauth/state.ts";
import type { OAuthProvider } from "../functions-shared/providers/registry.ts";
import { adapterContext, connectionRef } from "../functions-shared/jobs/tokens.ts";
import { adapterFor } from "../functions-shared/providers/registry.ts";
import {
  createTestDatabase,
  serveFunctionsFor,
  type TestDatabase,
  testDeps,
} from "./helpers/stack.ts";
import { SandboxControl } from "./helpers/sandbox.ts";

const STATE_SECRET = "test-oauth-state-secret-0123456789abcdef";
const PUBLIC_FUNCTIONS_URL = "https://tether.example.test/functions/v1";
const OWNER = "6a0e4f8e-3c1d-4b7a-9a51-0d2f3c4b5a69";

interface World {
  db: TestDatabase;
  sandbox: SandboxControl;
  functionsUrl: string;
  secretKey: string;
}

let world: Promise<{ w: World; stop: () => Promise<void> }> | undefined;

/** One database, sandbox and served `connect` for the whole file (spawning is slow), made once. */
function setup(): Promise<World> {
  world ??= (async () => {
    const db = await createTestDatabase();
    const sandbox = await startSandbox({ port: 0 });
    const functions = await serveFunctionsFor(db, ["connect"], {
      env: {
        TETHER_OAUTH_STATE_SECRET: STATE_SECRET,
        TETHER_PUBLIC_FUNCTIONS_URL: PUBLIC_FUNCTIONS_URL,
        SHOPIFY_BASE_URL: `${sandbox.url}/shopify`,
        LIGHTSPEED_BASE_URL: `${sandbox.url}/lightspeed`,
        QUICKBOOKS_BASE_URL: `${sandbox.url}/quickbooks`,
      },
    });
    return {
      w: {
        db,
        sandbox: new SandboxControl(sandbox.url),
        functionsUrl: functions.functionsUrl,
        secretKey: functions.secretKey,
      },
      async stop() {
        await functions.stop();
        await sandbox.close();
        await db.drop();
      },
    };
  })();
  return world.then((x) => x.w);
}

/** `GET /connect/<provider>/start` as a backend calls it; returns the authorize URL. */
async function start(w: World, provider: OAuthProvider, query: Record<string, string>) {
  const res = await fetch(
    `${w.functionsUrl}/connect/${provider}/start?${new URLSearchParams(query)}`,
    { headers: { apikey: w.secretKey }, redirect: "manual" },
  );
  const body = await res.json();
  assert.equal(res.status, 302, JSON.stringify(body));
  const location = res.headers.get("location")!;
  assert.equal(body.authorize_url, location);
  return new URL(location);
}

/** The person approves at the (sandbox) provider; returns the callback URL on the local gateway. */
async function approve(w: World, authorize: URL, edit: (q: URLSearchParams) => void = () => {}) {
  edit(authorize.searchParams);
  const res = await fetch(authorize, { redirect: "manual" });
  await res.body?.cancel();
  assert.equal(res.status, 302);
  const back = res.headers.get("location")!;
  assert.ok(back.startsWith(`${PUBLIC_FUNCTIONS_URL}/connect/`), "redirect_uri is the public URL");
  return new URL(back.replace(PUBLIC_FUNCTIONS_URL, w.functionsUrl));
}

async function callback(url: URL): Promise<{ status: number; html: string }> {
  const res = await fetch(url, { redirect: "manual" });
  return { status: res.status, html: await res.text() };
}

async function connectionFor(w: World, provider: string, externalId: string) {
  const [row] = await w.db.sql<ConnectionRow[]>`
    select * from tether.connections where provider = ${provider} and external_id = ${externalId}`;
  return row;
}

async function spentStates(w: World): Promise<number> {
  const [row] = await w.db.sql<{ n: number }[]>`select count(*)::int as n from tether.oauth_states`;
  return row!.n;
}

/** The stored credentials work: the access token verifies and the refresh token refreshes. */
async function assertWorkingCredentials(w: World, row: ConnectionRow) {
  const deps = await testDeps(w.db);
  const { values } = await readCredentials(w.db.sql, deps.vault, row.id);
  const adapter = adapterFor(connectionRef(row).provider);
  await adapter.verify(adapterContext(deps), connectionRef(row), values);
  const grant = await adapter.refresh(adapterContext(deps), connectionRef(row), values);
  assert.ok(grant.credentials.access_token);
}

function assertErrorPage(page: { status: number; html: string }, words: RegExp) {
  assert.equal(page.status, 400, page.html);
  assert.match(page.html, words);
  assert.doesNotMatch(page.html, /sb_code_|shpat_|shprt_|sb_qb_|sb_ls_/, "no code or token shown");
}

// ---------------------------------------------------------------------------------------------
// One test over the file-wide world, each behaviour a step: the world is torn down in `finally`
// whatever the steps do, and no test exists only to clean up after the others.

Deno.test("OAuth connect end to end over one served connect function, sandbox and database", async (t) => {
  try {
    // ---------------------------------------------------------------------------------------------
    // The flow per provider

    await t.step(
      "shopify OAuth connect stores an active connection for the shop with working tokens",
      async () => {
        const w = await setup();
        const account = await w.sandbox.account("shopify");
        const shop = account.config.shop!;
        const authorize = await start(w, "shopify", { shop, owner_id: OWNER, name: "Main shop" });
        assert.equal(authorize.pathname.endsWith("/shopify/admin/oauth/authorize"), true);
        assert.equal(
          authorize.searchParams.get("redirect_uri"),
          `${PUBLIC_FUNCTIONS_URL}/connect/shopify/callback`,
        );
        assert.equal(authorize.searchParams.get("scope"), "read_orders,read_customers");
        const back = await approve(w, authorize, (q) => q.set("account", account.external_id));
        for (const p of ["code", "hmac", "shop", "state", "timestamp", "host"]) {
          assert.ok(back.searchParams.has(p), p);
        }
        const page = await callback(back);
        assert.equal(page.status, 200, page.html);
        assert.match(page.html, /Shopify is connected/);
        const row = await connectionFor(w, "shopify", shop);
        assert.ok(row);
        assert.equal(row.status, "active");
        assert.equal(row.name, "Main shop");
        assert.equal(row.owner_id, OWNER);
        assert.equal(row.config.shop, shop);
        assert.equal(row.config.auth_base_url, `${w.sandbox.url}/shopify`);
        assert.ok(row.token_expires_at, "an expiring offline token");
        await assertWorkingCredentials(w, row);
      },
    );

    await t.step(
      "lightspeed OAuth connect captures domain_prefix and stores working tokens",
      async () => {
        const w = await setup();
        const account = await w.sandbox.account("lightspeed");
        const authorize = await start(w, "lightspeed", {});
        assert.equal(authorize.pathname.endsWith("/lightspeed/connect"), true);
        assert.equal(authorize.searchParams.get("response_type"), "code");
        const back = await approve(w, authorize, (q) => q.set("account", account.external_id));
        assert.equal(back.searchParams.get("domain_prefix"), account.config.domain_prefix);
        const page = await callback(back);
        assert.equal(page.status, 200, page.html);
        const row = await connectionFor(w, "lightspeed", account.config.domain_prefix!);
        assert.ok(row);
        assert.equal(row.status, "active");
        assert.equal(row.name, account.config.domain_prefix, "named after the store by default");
        assert.equal(row.owner_id, null);
        assert.equal(row.config.domain_prefix, account.config.domain_prefix);
        // The retailer id its webhooks carry, learned from GET /api/2.0/retailer at the exchange.
        assert.equal(row.config.retailer_id, account.config.retailer_id);
        await assertWorkingCredentials(w, row);
      },
    );

    await t.step(
      "quickbooks OAuth connect captures realmId from a freshly approved company",
      async () => {
        const w = await setup();
        const authorize = await start(w, "quickbooks", { owner_id: OWNER });
        assert.equal(authorize.pathname.endsWith("/quickbooks/connect/oauth2"), true);
        assert.equal(authorize.searchParams.get("scope"), "com.intuit.quickbooks.accounting");
        const back = await approve(w, authorize); // no account picked: the sandbox makes a new company
        const realm = back.searchParams.get("realmId")!;
        assert.match(realm, /^\d+$/);
        const page = await callback(back);
        assert.equal(page.status, 200, page.html);
        const row = await connectionFor(w, "quickbooks", realm);
        assert.ok(row);
        assert.equal(row.status, "active");
        assert.equal(row.owner_id, OWNER);
        assert.equal(row.config.realm_id, realm);
        await assertWorkingCredentials(w, row);
      },
    );

    // ---------------------------------------------------------------------------------------------
    // Refusals: each gets the error page and stores nothing

    await t.step("a tampered state gets the error page and stores nothing", async () => {
      const w = await setup();
      const account = await w.sandbox.account("lightspeed");
      const authorize = await start(w, "lightspeed", {});
      const state = authorize.searchParams.get("state")!;
      const [h, p, s] = state.split(".");
      const claims = JSON.parse(atob(p!.replace(/-/g, "+").replace(/_/g, "/")));
      claims.owner = OWNER; // try to claim the connection for someone else
      const forged = `${h}.${
        btoa(JSON.stringify(claims)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")
      }.${s}`;
      const before = await spentStates(w);
      const back = await approve(w, authorize, (q) => {
        q.set("account", account.external_id);
        q.set("state", forged);
      });
      assertErrorPage(await callback(back), /not valid/);
      assert.equal(await connectionFor(w, "lightspeed", account.external_id), undefined);
      assert.equal(await spentStates(w), before);
    });

    await t.step("an expired state gets the error page and stores nothing", async () => {
      const w = await setup();
      const account = await w.sandbox.account("quickbooks");
      const authorize = await start(w, "quickbooks", {});
      const { state: expired } = await signState(
        STATE_SECRET,
        { provider: "quickbooks", ownerId: null },
        new Date(Date.now() - 3600_000), // issued an hour ago, valid 10 minutes
      );
      const back = await approve(w, authorize, (q) => {
        q.set("account", account.external_id);
        q.set("state", expired);
      });
      assertErrorPage(await callback(back), /has expired/);
      assert.equal(await connectionFor(w, "quickbooks", account.external_id), undefined);
    });

    await t.step("a replayed state gets the error page the second time", async () => {
      const w = await setup();
      const account = await w.sandbox.account("quickbooks");
      const authorize = await start(w, "quickbooks", {});
      const back = await approve(w, authorize, (q) => q.set("account", account.external_id));
      assert.equal((await callback(back)).status, 200);
      const stored = await connectionFor(w, "quickbooks", account.external_id);
      assert.ok(stored);
      assertErrorPage(await callback(back), /already used/);
      const after = await connectionFor(w, "quickbooks", account.external_id);
      assert.deepEqual(
        after?.last_token_refresh_at,
        stored.last_token_refresh_at,
        "nothing changed",
      );
    });

    await t.step("a state made for another provider gets the error page", async () => {
      const w = await setup();
      const account = await w.sandbox.account("quickbooks");
      const lightspeedState = (await start(w, "lightspeed", {})).searchParams.get("state")!;
      const authorize = await start(w, "quickbooks", {});
      const back = await approve(w, authorize, (q) => {
        q.set("account", account.external_id);
        q.set("state", lightspeedState);
      });
      assertErrorPage(await callback(back), /another provider/);
      assert.equal(await connectionFor(w, "quickbooks", account.external_id), undefined);
    });

    await t.step(
      "a shopify callback with a bad hmac gets the error page and spends nothing",
      async () => {
        const w = await setup();
        const account = await w.sandbox.account("shopify");
        const shop = account.config.shop!;
        const authorize = await start(w, "shopify", { shop });
        const back = await approve(w, authorize, (q) => q.set("account", account.external_id));
        const before = await spentStates(w);
        const hmac = back.searchParams.get("hmac")!;
        back.searchParams.set("hmac", (hmac[0] === "0" ? "1" : "0") + hmac.slice(1));
        assertErrorPage(await callback(back), /could not be verified/);
        // Another shop in the query (signed state for the first) is refused too: the hmac covers it.
        back.searchParams.set("hmac", hmac);
        back.searchParams.set("shop", "someone-else.myshopify.com");
        assertErrorPage(await callback(back), /could not be verified/);
        assert.equal(await connectionFor(w, "shopify", shop), undefined);
        assert.equal(await spentStates(w), before);
      },
    );

    await t.step("a person who refuses access gets a page and nothing is stored", async () => {
      const w = await setup();
      const account = await w.sandbox.account("lightspeed");
      const authorize = await start(w, "lightspeed", {});
      const back = await approve(w, authorize, (q) => {
        q.set("account", account.external_id);
        q.set("deny", "1");
      });
      assertErrorPage(await callback(back), /did not grant access \(access_denied\)/);
      assert.equal(await connectionFor(w, "lightspeed", account.external_id), undefined);
    });

    await t.step(
      "start needs caller auth, a known OAuth provider and, for shopify, the shop",
      async () => {
        const w = await setup();
        const anonymous = await fetch(`${w.functionsUrl}/connect/quickbooks/start`, {
          redirect: "manual",
        });
        await anonymous.body?.cancel();
        assert.equal(anonymous.status, 401);
        const get = async (path: string) => {
          const res = await fetch(`${w.functionsUrl}/connect/${path}`, {
            headers: { apikey: w.secretKey },
            redirect: "manual",
          });
          return { status: res.status, body: await res.json() };
        };
        assert.equal((await get("shopify/start")).status, 400);
        assert.equal((await get("shopify/start?shop=evil.example.com")).status, 400);
        assert.equal((await get("quickbooks/start?owner_id=not-a-uuid")).status, 400);
        assert.equal((await get("maystro/start")).status, 404);
        // Everything else still reaches the connect job.
        const job = await fetch(`${w.functionsUrl}/connect`, {
          method: "POST",
          headers: { apikey: w.secretKey, "content-type": "application/json" },
          body: JSON.stringify({ provider: "quickbooks" }),
        });
        assert.equal(job.status, 400);
        assert.equal((await job.json()).error, "invalid_body");
      },
    );
  } finally {
    if (world) await (await world).stop();
  }
});
