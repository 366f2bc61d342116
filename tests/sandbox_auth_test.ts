// Black-box tests of the provider sandboxes' auth side, over real HTTP on loopback.
// Each test starts its own sandbox (independent state) and closes it.
import assert from "node:assert/strict";
import { type SandboxOptions, startSandbox } from "../sandbox/server.ts";
import { fingerprint } from "./helpers/sandbox.ts";

// ---------------------------------------------------------------------------
// HTTP helpers

const DAY = 86_400;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // Parsed JSON body (undefined when not JSON): tests poke at it freely.
  // deno-lint-ignore no-explicit-any
  body: any;
}

interface RequestInit2 {
  json?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

class Client {
  constructor(readonly url: string) {}

  async request(method: string, path: string, init: RequestInit2 = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    let body: string | undefined;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    } else if (init.form) {
      headers.set("content-type", "application/x-www-form-urlencoded");
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(this.url + path, { method, headers, body, signal: init.signal });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, text, body: parsed };
  }

  get(path: string, init?: RequestInit2): Promise<Reply> {
    return this.request("GET", path, init);
  }

  post(path: string, init?: RequestInit2): Promise<Reply> {
    return this.request("POST", path, init);
  }

  async account(provider: string, extra: Record<string, unknown> = {}) {
    const res = await this.post("/_sandbox/accounts", { json: { provider, ...extra } });
    assert.equal(res.status, 201, `create ${provider} account: ${res.text}`);
    return res.body as {
      provider: string;
      external_id: string;
      credentials: Record<string, string>;
      config: Record<string, string>;
    };
  }

  async advance(seconds: number): Promise<string> {
    const res = await this.post("/_sandbox/clock", { json: { advance_seconds: seconds } });
    assert.equal(res.status, 200);
    return res.body.now;
  }

  async fault(spec: Record<string, unknown>): Promise<void> {
    const res = await this.post("/_sandbox/faults", { json: spec });
    assert.equal(res.status, 201, `queue fault: ${res.text}`);
  }

  async inspect(provider: string, externalId: string) {
    const res = await this.get(`/_sandbox/accounts/${provider}/${externalId}`);
    assert.equal(res.status, 200);
    return res.body as {
      live_refresh_token_fingerprint: string | null;
      live_access_token_fingerprint: string | null;
      refresh_token_expires_at: string | null;
      access_token_expires_at: string | null;
      revoked: boolean;
    };
  }

  // --- provider calls, shaped the way each provider documents them ---

  shipheroRefresh(refreshToken: string): Promise<Reply> {
    return this.post("/shiphero/auth/refresh", { json: { refresh_token: refreshToken } });
  }

  shipheroApi(accessToken: string): Promise<Reply> {
    return this.post("/shiphero/graphql", {
      json: { query: "{ account { request_id complexity data { id email } } }" },
      headers: { authorization: `Bearer ${accessToken}` },
    });
  }

  shopifyRefresh(refreshToken: string, secret = "sandbox-shopify-secret"): Promise<Reply> {
    return this.post("/shopify/admin/oauth/access_token", {
      json: {
        client_id: "sandbox-shopify-client",
        client_secret: secret,
        refresh_token: refreshToken,
        grant_type: "refresh_token",
      },
    });
  }

  shopifyApi(accessToken: string): Promise<Reply> {
    return this.post("/shopify/admin/api/2026-10/graphql.json", {
      json: { query: "{ shop { name } }" },
      headers: { "x-shopify-access-token": accessToken },
    });
  }

  lightspeedRefresh(refreshToken: string): Promise<Reply> {
    return this.post("/lightspeed/api/1.0/token", {
      form: {
        refresh_token: refreshToken,
        client_id: "sandbox-lightspeed-client",
        client_secret: "sandbox-lightspeed-secret",
        grant_type: "refresh_token",
      },
    });
  }

  lightspeedApi(accessToken: string): Promise<Reply> {
    return this.get("/lightspeed/api/2.0/outlets", {
      headers: { authorization: `Bearer ${accessToken}` },
    });
  }

  quickbooksRefresh(
    refreshToken: string,
    opts: { hardExpiry?: boolean; basic?: string | null } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = {};
    const basic = opts.basic === undefined
      ? btoa("sandbox-quickbooks-client:sandbox-quickbooks-secret")
      : opts.basic;
    if (basic !== null) headers.authorization = `Basic ${basic}`;
    if (opts.hardExpiry) headers["x-include-refresh-token-hard-expires-in"] = "true";
    return this.post("/quickbooks/oauth2/v1/tokens/bearer", {
      form: { grant_type: "refresh_token", refresh_token: refreshToken },
      headers,
    });
  }

  quickbooksApi(accessToken: string, realmId: string): Promise<Reply> {
    return this.get(`/quickbooks/v3/company/${realmId}/companyinfo/${realmId}`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
  }

  maystroApi(apiToken: string | null): Promise<Reply> {
    return this.get("/maystro/api/stores/orders/?page=1", {
      headers: apiToken === null ? {} : { authorization: `Token ${apiToken}` },
    });
  }
}

async function withSandbox(
  fn: (c: Client) => Promise<void>,
  opts: SandboxOptions = {},
): Promise<void> {
  const sandbox = await startSandbox({ port: 0, ...opts });
  try {
    await fn(new Client(sandbox.url));
  } finally {
    await sandbox.close();
  }
}

// ---------------------------------------------------------------------------
// ShipHero

Deno.test("shiphero refresh returns only a new access token and the static refresh token works twice", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shiphero");
    assert.deepEqual(acct.config, {});
    assert.match(acct.credentials.refresh_token!, /^sb_sh_rt_[0-9a-f]{48}$/);

    const first = await c.shipheroRefresh(acct.credentials.refresh_token!);
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.body).sort(), [
      "access_token",
      "expires_in",
      "scope",
      "token_type",
    ]);
    assert.equal(first.body.expires_in, 2_419_200);
    assert.equal(first.body.token_type, "Bearer");

    const second = await c.shipheroRefresh(acct.credentials.refresh_token!);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.access_token, first.body.access_token);

    for (const token of [first.body.access_token, second.body.access_token]) {
      const api = await c.shipheroApi(token);
      assert.equal(api.status, 200);
      assert.equal(api.body.data.account.complexity, 1);
      assert.ok(typeof api.body.data.account.request_id === "string");
      assert.ok(typeof api.body.data.account.data.email === "string");
    }
  }));

Deno.test("shiphero answers an unknown or revoked refresh token with 403 invalid_grant and a bad access token with 401", () =>
  withSandbox(async (c) => {
    const unknown = await c.shipheroRefresh("sb_sh_rt_not-a-token");
    assert.equal(unknown.status, 403);
    assert.deepEqual(unknown.body, {
      error: "invalid_grant",
      error_description: "Unknown or invalid refresh token.",
    });

    const acct = await c.account("shiphero");
    const revoke = await c.post(`/_sandbox/accounts/shiphero/${acct.external_id}/revoke`);
    assert.equal(revoke.status, 200);
    assert.equal((await c.shipheroRefresh(acct.credentials.refresh_token!)).status, 403);

    const api = await c.shipheroApi(acct.credentials.access_token!);
    assert.equal(api.status, 401);
    assert.equal(api.body.code, 401);
    assert.equal(api.body.Status, "Unauthorized");
    assert.equal((await c.inspect("shiphero", acct.external_id)).revoked, true);
  }));

// ---------------------------------------------------------------------------
// Shopify

Deno.test("shopify refresh rotates and kills the old refresh token and the old access token at once", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    assert.match(acct.config.shop!, /^[a-z0-9-]+\.myshopify\.com$/);
    const { access_token: oldAccess, refresh_token: oldRefresh } = acct.credentials;
    assert.equal((await c.shopifyApi(oldAccess!)).status, 200);

    const res = await c.shopifyRefresh(oldRefresh!);
    assert.equal(res.status, 200);
    assert.equal(res.body.expires_in, 3600);
    assert.equal(res.body.refresh_token_expires_in, 7_776_000);
    assert.ok(typeof res.body.scope === "string");
    assert.notEqual(res.body.refresh_token, oldRefresh);
    assert.match(res.body.access_token, /^shpat_/);

    const deadAccess = await c.shopifyApi(oldAccess!);
    assert.equal(deadAccess.status, 401);
    assert.deepEqual(deadAccess.body, {
      errors: "[API] Invalid API key or access token (unrecognized login or wrong password)",
    });
    const reused = await c.shopifyRefresh(oldRefresh!);
    assert.equal(reused.status, 400);
    assert.equal(reused.body.error, "invalid_grant");

    const api = await c.shopifyApi(res.body.access_token);
    assert.equal(api.status, 200);
    assert.ok(typeof api.body.data.shop.name === "string");
    assert.ok(api.body.extensions.cost.throttleStatus.restoreRate > 0);
  }));

Deno.test("shopify legacy offline token never expires and cannot be refreshed", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify", { kind: "legacy", external_id: "old-store" });
    assert.deepEqual(acct.config, { shop: "old-store.myshopify.com" });
    assert.deepEqual(Object.keys(acct.credentials), ["access_token"]);
    await c.advance(5 * 365 * DAY);
    assert.equal((await c.shopifyApi(acct.credentials.access_token!)).status, 200);
    const refresh = await c.shopifyRefresh(acct.credentials.access_token!);
    assert.equal(refresh.status, 400);
    assert.equal(refresh.body.error, "invalid_grant");
    const view = await c.inspect("shopify", "old-store");
    assert.equal(view.access_token_expires_at, null);
    assert.equal(view.live_refresh_token_fingerprint, null);
  }));

Deno.test("shopify rejects a wrong client with 401 invalid_client and leaves the refresh token usable", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    const wrong = await c.shopifyRefresh(acct.credentials.refresh_token!, "not-the-secret");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, "invalid_client");
    assert.equal((await c.shopifyRefresh(acct.credentials.refresh_token!)).status, 200);
  }));

Deno.test("shopify expiring access token dies after an hour and its refresh token after 90 days", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    await c.advance(3601);
    assert.equal((await c.shopifyApi(acct.credentials.access_token!)).status, 401);
    const res = await c.shopifyRefresh(acct.credentials.refresh_token!);
    assert.equal(res.status, 200);
    await c.advance(90 * DAY + 1);
    assert.equal((await c.shopifyRefresh(res.body.refresh_token)).status, 400);
  }));

Deno.test("shopify: two concurrent refreshes with the same token rotate once, the loser gets invalid_grant", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    const replies = await Promise.all([
      c.shopifyRefresh(acct.credentials.refresh_token!),
      c.shopifyRefresh(acct.credentials.refresh_token!),
    ]);
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 400]);
    const winner = replies.find((r) => r.status === 200)!;
    const view = await c.inspect("shopify", acct.external_id);
    assert.equal(
      view.live_refresh_token_fingerprint,
      await fingerprint(winner.body.refresh_token),
    );
  }));

// ---------------------------------------------------------------------------
// Lightspeed X-Series

Deno.test("lightspeed token endpoint takes form-encoded credentials only, not JSON or the query string", () =>
  withSandbox(async (c) => {
    const acct = await c.account("lightspeed");
    const creds = {
      refresh_token: acct.credentials.refresh_token!,
      client_id: "sandbox-lightspeed-client",
      client_secret: "sandbox-lightspeed-secret",
      grant_type: "refresh_token",
    };
    const asJson = await c.post("/lightspeed/api/1.0/token", { json: creds });
    assert.equal(asJson.status, 400);
    assert.equal(asJson.body.error, "invalid_request");
    const inQuery = await c.post(`/lightspeed/api/1.0/token?${new URLSearchParams(creds)}`, {
      form: { grant_type: "refresh_token" },
    });
    assert.equal(inQuery.status, 400);

    const now = Date.parse((await c.get("/_sandbox/clock")).body.now);
    const res = await c.lightspeedRefresh(acct.credentials.refresh_token!);
    assert.equal(res.status, 200);
    assert.equal(res.body.token_type, "Bearer");
    assert.equal(res.body.expires_in, 86_400);
    assert.ok(
      Math.abs(res.body.expires - (Math.floor(now / 1000) + 86_400)) <= 2,
      "expires is unix time",
    );
    assert.equal(res.body.domain_prefix, acct.config.domain_prefix);
    assert.ok(typeof res.body.scope === "string");
  }));

Deno.test("lightspeed rotation revokes the previous refresh token as soon as the new one is issued", () =>
  withSandbox(async (c) => {
    const acct = await c.account("lightspeed");
    const first = await c.lightspeedRefresh(acct.credentials.refresh_token!);
    assert.equal(first.status, 200);
    const old = await c.lightspeedRefresh(acct.credentials.refresh_token!);
    assert.equal(old.status, 400);
    assert.equal(old.body.error, "invalid_grant");
    assert.equal((await c.lightspeedRefresh(first.body.refresh_token)).status, 200);

    const outlets = await c.lightspeedApi(first.body.access_token);
    assert.equal(outlets.status, 200);
    assert.ok(Array.isArray(outlets.body.data) && outlets.body.data.length > 0);
    assert.equal((await c.lightspeedApi("sb_ls_at_bogus")).status, 401);
  }));

Deno.test("lightspeed refresh token dies after 31 idle days but a refresh before then keeps the account alive", () =>
  withSandbox(async (c) => {
    const idle = await c.account("lightspeed");
    const busy = await c.account("lightspeed");
    await c.advance(29 * DAY);
    const kept = await c.lightspeedRefresh(busy.credentials.refresh_token!);
    assert.equal(kept.status, 200);
    await c.advance(2 * DAY);
    const dead = await c.lightspeedRefresh(idle.credentials.refresh_token!);
    assert.equal(dead.status, 400);
    assert.equal(dead.body.error, "invalid_grant");
    assert.equal((await c.lightspeedRefresh(kept.body.refresh_token)).status, 200);
  }));

Deno.test("lightspeed idle period and access-token lifetime are configurable per sandbox", () =>
  withSandbox(async (c) => {
    const acct = await c.account("lightspeed");
    const res = await c.lightspeedRefresh(acct.credentials.refresh_token!);
    assert.equal(res.body.expires_in, 1800);
    await c.advance(3601);
    assert.equal((await c.lightspeedRefresh(res.body.refresh_token)).status, 400);

    const config = await c.post("/_sandbox/config", {
      json: { lightspeed: { refresh_idle_seconds: 7200 } },
    });
    assert.deepEqual(config.body.lightspeed, {
      access_token_seconds: 1800,
      refresh_idle_seconds: 7200,
    });
  }, { lightspeed: { accessTokenSeconds: 1800, refreshIdleSeconds: 3600 } }));

// ---------------------------------------------------------------------------
// QuickBooks

Deno.test("quickbooks token endpoint requires Basic client auth and a form body", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    assert.match(acct.config.realm_id!, /^\d+$/);
    const rt = acct.credentials.refresh_token!;
    for (const basic of [null, btoa("sandbox-quickbooks-client:wrong")]) {
      const res = await c.quickbooksRefresh(rt, { basic });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { error: "invalid_client" });
    }
    const asJson = await c.post("/quickbooks/oauth2/v1/tokens/bearer", {
      json: { grant_type: "refresh_token", refresh_token: rt },
      headers: {
        authorization: `Basic ${btoa("sandbox-quickbooks-client:sandbox-quickbooks-secret")}`,
      },
    });
    assert.equal(asJson.status, 400);

    const res = await c.quickbooksRefresh(rt);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body), [
      "token_type",
      "expires_in",
      "refresh_token",
      "x_refresh_token_expires_in",
      "access_token",
    ]);
    assert.equal(res.body.token_type, "bearer");
    assert.equal(res.body.expires_in, 3600);
    assert.equal(res.body.x_refresh_token_expires_in, 8_726_400);
    assert.notEqual(res.body.refresh_token, rt);
  }));

Deno.test("quickbooks previous refresh token still works 23 h after rotation (returning the newest) and fails after 25 h", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    const r0 = acct.credentials.refresh_token!;
    const first = await c.quickbooksRefresh(r0);
    const r1 = first.body.refresh_token;
    await c.advance(23 * 3600);
    const grace = await c.quickbooksRefresh(r0);
    assert.equal(grace.status, 200);
    assert.equal(
      grace.body.refresh_token,
      r1,
      "the predecessor hands back the current newest token",
    );
    assert.notEqual(grace.body.access_token, first.body.access_token);
    assert.equal(
      (await c.quickbooksApi(grace.body.access_token, acct.config.realm_id!)).status,
      200,
    );

    await c.advance(2 * 3600);
    const late = await c.quickbooksRefresh(r0);
    assert.equal(late.status, 400);
    assert.deepEqual(late.body, { error: "invalid_grant", error_description: "Token invalid" });
    assert.equal((await c.quickbooksRefresh(r1)).status, 200);
  }));

Deno.test("quickbooks refresh token expiry rolls 8726400 s from each issue", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    await c.advance(100 * DAY);
    const first = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    assert.equal(first.status, 200);
    assert.equal(first.body.x_refresh_token_expires_in, 8_726_400);
    await c.advance(100 * DAY); // 200 days after the grant: alive because it rolled
    const second = await c.quickbooksRefresh(first.body.refresh_token);
    assert.equal(second.status, 200);
    await c.advance(8_726_400 + 1);
    const expired = await c.quickbooksRefresh(second.body.refresh_token);
    assert.equal(expired.status, 400);
    assert.equal(expired.body.error_description, "Token invalid");
  }));

Deno.test("quickbooks hard expiry is reported only with the header and ends refreshes after 5 years", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    const plain = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    assert.equal(plain.body.x_refresh_token_hard_expires_in, undefined);
    const withHeader = await c.quickbooksRefresh(plain.body.refresh_token, { hardExpiry: true });
    const fiveYears = (Date.UTC(2031, 0, 1) - Date.UTC(2026, 0, 1)) / 1000;
    assert.ok(
      Math.abs(withHeader.body.x_refresh_token_hard_expires_in - fiveYears) <= DAY + 5,
      `hard expiry ≈ 5 years, got ${withHeader.body.x_refresh_token_hard_expires_in}`,
    );

    // Keep refreshing every 100 days: the rolling expiry is capped by the hard one.
    let rt: string = withHeader.body.refresh_token;
    let last = withHeader;
    for (let day = 100; day < 5 * 365; day += 100) {
      await c.advance(100 * DAY);
      last = await c.quickbooksRefresh(rt, { hardExpiry: true });
      assert.equal(last.status, 200, `refresh on day ${day}`);
      rt = last.body.refresh_token;
    }
    assert.ok(
      last.body.x_refresh_token_expires_in < 8_726_400,
      "rolling expiry capped by the hard one",
    );
    assert.equal(last.body.x_refresh_token_expires_in, last.body.x_refresh_token_hard_expires_in);
    await c.advance(last.body.x_refresh_token_hard_expires_in + 1);
    const dead = await c.quickbooksRefresh(rt);
    assert.equal(dead.status, 400);
    assert.equal(dead.body.error, "invalid_grant");
  }));

Deno.test("quickbooks companyinfo needs a live bearer token for that realm", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    const realm = acct.config.realm_id!;
    const info = await c.quickbooksApi(acct.credentials.access_token!, realm);
    assert.equal(info.status, 200);
    assert.ok(typeof info.body.CompanyInfo.CompanyName === "string");

    const bad = await c.quickbooksApi("sb_qb_at_bogus", realm);
    assert.equal(bad.status, 401);
    assert.equal(bad.body.fault.type, "AUTHENTICATION");
    const other = await c.account("quickbooks");
    assert.equal(
      (await c.quickbooksApi(acct.credentials.access_token!, other.config.realm_id!)).status,
      403,
    );
    await c.advance(3601);
    assert.equal((await c.quickbooksApi(acct.credentials.access_token!, realm)).status, 401);
  }));

// ---------------------------------------------------------------------------
// Maystro

Deno.test("maystro accepts its static api token and answers others with 401 Invalid token", () =>
  withSandbox(async (c) => {
    const acct = await c.account("maystro");
    // The api token, and the secret the sandbox puts in its webhook URL (issue #6).
    assert.deepEqual(Object.keys(acct.credentials), ["api_token", "webhook_secret"]);
    const orders = await c.maystroApi(acct.credentials.api_token!);
    assert.equal(orders.status, 200);
    assert.deepEqual(orders.body, { list: { count: 0, next: null, results: [] } });

    const bad = await c.maystroApi("sb_maystro_bogus");
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, { detail: "Invalid token." });
    assert.equal((await c.maystroApi(null)).status, 401);

    await c.post(`/_sandbox/accounts/maystro/${acct.external_id}/revoke`);
    assert.equal((await c.maystroApi(acct.credentials.api_token!)).status, 401);
  }));

// ---------------------------------------------------------------------------
// Faults

Deno.test("5xx fault answers 503 with a non-JSON body and does not consume the token", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    await c.fault({ provider: "shopify", kind: "5xx" });
    const failed = await c.shopifyRefresh(acct.credentials.refresh_token!);
    assert.equal(failed.status, 503);
    assert.equal(failed.body, undefined, "body is not JSON");
    assert.equal((await c.shopifyRefresh(acct.credentials.refresh_token!)).status, 200);
  }));

Deno.test("hang fault holds the request until the client gives up, and the token survives", () =>
  withSandbox(async (c) => {
    const acct = await c.account("lightspeed");
    await c.fault({ provider: "lightspeed", kind: "hang" });
    const started = performance.now();
    await assert.rejects(
      () =>
        c.post("/lightspeed/api/1.0/token", {
          form: {
            refresh_token: acct.credentials.refresh_token!,
            client_id: "sandbox-lightspeed-client",
            client_secret: "sandbox-lightspeed-secret",
            grant_type: "refresh_token",
          },
          signal: AbortSignal.timeout(200),
        }),
      { name: "TimeoutError" },
    );
    assert.ok(performance.now() - started >= 190, "held until the client timed out");
    assert.equal((await c.lightspeedRefresh(acct.credentials.refresh_token!)).status, 200);
  }));

Deno.test("close() ends requests held by a hang fault", async () => {
  const sandbox = await startSandbox({ port: 0 });
  const c = new Client(sandbox.url);
  const acct = await c.account("shiphero");
  await c.fault({ provider: "shiphero", endpoint: "api", kind: "hang" });
  const held = c.shipheroApi(acct.credentials.access_token!).then(
    (r) => r.status,
    () => "connection closed",
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  const started = performance.now();
  await sandbox.close();
  await held;
  assert.ok(performance.now() - started < 5000, "close did not wait for the 60 s hold");
});

Deno.test("429 fault carries Retry-After (default 2 s) and leaves the token alone", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    await c.fault({ provider: "quickbooks", kind: "429", retry_after: 7 });
    await c.fault({ provider: "quickbooks", kind: "429" });
    const first = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    assert.equal(first.status, 429);
    assert.equal(first.headers.get("retry-after"), "7");
    const second = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    assert.equal(second.headers.get("retry-after"), "2");
    const view = await c.inspect("quickbooks", acct.external_id);
    assert.equal(
      view.live_refresh_token_fingerprint,
      await fingerprint(acct.credentials.refresh_token!),
    );
  }));

Deno.test("malformed_json fault returns 200 with a truncated body after the refresh really happened", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    await c.fault({ provider: "shopify", kind: "malformed_json" });
    const res = await c.shopifyRefresh(acct.credentials.refresh_token!);
    assert.equal(res.status, 200);
    assert.equal(res.body, undefined, "body does not parse");
    assert.ok(res.text.startsWith("{"), "looks like the start of JSON");
    // The response was garbled on the way back: the rotation did happen.
    const view = await c.inspect("shopify", acct.external_id);
    assert.notEqual(
      view.live_refresh_token_fingerprint,
      await fingerprint(acct.credentials.refresh_token!),
    );
  }));

Deno.test("missing_field fault drops access_token by default, or the named field", () =>
  withSandbox(async (c) => {
    const acct = await c.account("lightspeed");
    await c.fault({ provider: "lightspeed", kind: "missing_field" });
    const noAccess = await c.lightspeedRefresh(acct.credentials.refresh_token!);
    assert.equal(noAccess.status, 200);
    assert.equal(noAccess.body.access_token, undefined);
    assert.ok(typeof noAccess.body.refresh_token === "string");

    await c.fault({ provider: "lightspeed", kind: "missing_field", field: "refresh_token" });
    const noRefresh = await c.lightspeedRefresh(noAccess.body.refresh_token);
    assert.equal(noRefresh.body.refresh_token, undefined);
    assert.ok(typeof noRefresh.body.access_token === "string");
  }));

Deno.test("invalid_grant fault answers with the provider's invalid_grant and keeps the token alive", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    await c.fault({ provider: "quickbooks", kind: "invalid_grant" });
    const res = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    assert.equal(res.status, 400);
    assert.deepEqual(res.body, { error: "invalid_grant", error_description: "Token invalid" });
    assert.equal((await c.quickbooksRefresh(acct.credentials.refresh_token!)).status, 200);

    const sh = await c.account("shiphero");
    await c.fault({ provider: "shiphero", kind: "invalid_grant" });
    assert.equal((await c.shipheroRefresh(sh.credentials.refresh_token!)).status, 403);
  }));

Deno.test("faults count down, count 0 persists until cleared, and api faults hit only the api", () =>
  withSandbox(async (c) => {
    const acct = await c.account("maystro");
    await c.fault({ provider: "maystro", endpoint: "api", kind: "5xx", count: 2 });
    assert.equal((await c.maystroApi(acct.credentials.api_token!)).status, 503);
    assert.equal((await c.maystroApi(acct.credentials.api_token!)).status, 503);
    assert.equal((await c.maystroApi(acct.credentials.api_token!)).status, 200);

    const sh = await c.account("shiphero");
    await c.fault({ provider: "shiphero", endpoint: "api", kind: "5xx", count: 0 });
    for (let i = 0; i < 3; i++) {
      assert.equal((await c.shipheroApi(sh.credentials.access_token!)).status, 503);
    }
    assert.equal(
      (await c.shipheroRefresh(sh.credentials.refresh_token!)).status,
      200,
      "token endpoint unaffected",
    );
    const cleared = await c.request("DELETE", "/_sandbox/faults");
    assert.deepEqual(cleared.body, { cleared: 1 });
    assert.equal((await c.shipheroApi(sh.credentials.access_token!)).status, 200);

    const noTokenEndpoint = await c.post("/_sandbox/faults", {
      json: { provider: "maystro", kind: "5xx" },
    });
    assert.equal(noTokenEndpoint.status, 400);
  }));

Deno.test("a slow fault holds the provider's real answer: the request is served, and counted, only at its end", () =>
  withSandbox(async (c) => {
    const acct = await c.account("maystro");
    const served = async () => (await c.get("/_sandbox/stats")).body.api.maystro?.requests ?? 0;
    await c.fault({ provider: "maystro", endpoint: "api", kind: "slow", delay_ms: 300 });
    const started = performance.now();
    const held = c.maystroApi(acct.credentials.api_token!);
    // The request has reached the sandbox (its fault is taken) but the provider has not served it.
    while ((await c.get("/_sandbox/faults")).body.faults.length > 0) { /* not arrived yet */ }
    assert.equal(await served(), 0, "not served while held");
    const res = await held;
    assert.ok(performance.now() - started >= 290, "held for its delay");
    assert.equal(res.status, 200, "the provider's own answer");
    assert.ok(Array.isArray(res.body.list.results), res.text);
    assert.equal(await served(), 1);
  }));

// ---------------------------------------------------------------------------
// Stats, inspection, clock, control API

Deno.test("stats count refresh attempts per account and per token fingerprint, never raw tokens", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shopify");
    const other = await c.account("shopify");
    const t0 = acct.credentials.refresh_token!;
    const rotated = await c.shopifyRefresh(t0);
    assert.equal(
      (await c.shopifyRefresh(t0)).status,
      400,
      "reusing the rotated token fails but counts",
    );
    await c.fault({ provider: "shopify", kind: "5xx" });
    assert.equal(
      (await c.shopifyRefresh(rotated.body.refresh_token)).status,
      503,
      "faulted, still counts",
    );
    assert.equal(
      (await c.shopifyRefresh("shprt_unknown")).status,
      400,
      "unknown token: not an account's",
    );

    const stats = await c.get("/_sandbox/stats");
    assert.equal(stats.body.refresh_calls, 3);
    assert.deepEqual(stats.body.by_account[`shopify/${acct.external_id}`], {
      refresh_calls: 3,
      by_refresh_token: {
        [await fingerprint(t0)]: 2,
        [await fingerprint(rotated.body.refresh_token)]: 1,
      },
    });
    assert.equal(stats.body.by_account[`shopify/${other.external_id}`].refresh_calls, 0);
    for (const raw of [t0, rotated.body.refresh_token, acct.credentials.access_token!]) {
      assert.ok(!stats.text.includes(raw), "no raw token in stats");
    }
  }));

Deno.test("account inspection shows the newest tokens' fingerprints and expiries", () =>
  withSandbox(async (c) => {
    const acct = await c.account("quickbooks");
    const res = await c.quickbooksRefresh(acct.credentials.refresh_token!);
    const view = await c.inspect("quickbooks", acct.external_id);
    assert.equal(view.live_refresh_token_fingerprint, await fingerprint(res.body.refresh_token));
    assert.equal(view.live_access_token_fingerprint, await fingerprint(res.body.access_token));
    const now = Date.parse((await c.get("/_sandbox/clock")).body.now);
    assert.ok(Math.abs(Date.parse(view.access_token_expires_at!) - (now + 3600_000)) < 5000);
    assert.ok(Math.abs(Date.parse(view.refresh_token_expires_at!) - (now + 8_726_400_000)) < 5000);
    assert.equal(view.revoked, false);
    for (const raw of [res.body.refresh_token, res.body.access_token]) {
      assert.ok(!JSON.stringify(view).includes(raw));
    }
    assert.equal((await c.get("/_sandbox/accounts/quickbooks/nope")).status, 404);
  }));

Deno.test("the sandbox clock moves expiry: advancing past 28 days kills a shiphero access token, set moves lightspeed expires", () =>
  withSandbox(async (c) => {
    const acct = await c.account("shiphero");
    const before = Date.parse((await c.get("/_sandbox/clock")).body.now);
    assert.ok(Math.abs(before - Date.now()) < 5000, "defaults to real time");
    const after = Date.parse(await c.advance(2_419_200 + 1));
    assert.ok(after - before >= 2_419_201_000);
    assert.equal((await c.shipheroApi(acct.credentials.access_token!)).status, 401);

    const set = await c.post("/_sandbox/clock", { json: { set: "2030-01-01T00:00:00Z" } });
    assert.ok(Date.parse(set.body.now) - Date.UTC(2030, 0, 1) < 5000);
    const ls = await c.account("lightspeed");
    const res = await c.lightspeedRefresh(ls.credentials.refresh_token!);
    assert.ok(Math.abs(res.body.expires - (Date.UTC(2030, 0, 1) / 1000 + 86_400)) < 5);

    assert.equal((await c.post("/_sandbox/clock", { json: { set: "not a date" } })).status, 400);
  }));

Deno.test("control API: generated ids are unique, duplicates conflict, unknown routes are 404 JSON", () =>
  withSandbox(async (c) => {
    assert.deepEqual((await c.get("/_sandbox/health")).body, { ok: true });
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await c.account("lightspeed")).external_id);
    assert.equal(ids.size, 5);
    const fixed = await c.account("quickbooks", { external_id: "123145" });
    assert.deepEqual(fixed.config, { realm_id: "123145" });
    const dup = await c.post("/_sandbox/accounts", {
      json: { provider: "quickbooks", external_id: "123145" },
    });
    assert.equal(dup.status, 409);
    assert.equal((await c.post("/_sandbox/accounts", { json: { provider: "nope" } })).status, 400);
    assert.equal(
      (await c.post("/_sandbox/accounts", { json: { provider: "maystro", kind: "legacy" } }))
        .status,
      400,
    );
    for (const path of ["/nowhere", "/shopify/admin/unknown", "/_sandbox/unknown"]) {
      const res = await c.get(path);
      assert.equal(res.status, 404);
      assert.equal(res.body.error, "not_found");
    }
  }));

Deno.test("each sandbox has its own state and its own app credentials", async () => {
  const a = await startSandbox({ port: 0 });
  const b = await startSandbox({
    port: 0,
    apps: { shopify: { clientId: "custom-client", clientSecret: "custom-secret" } },
  });
  try {
    const ca = new Client(a.url);
    const cb = new Client(b.url);
    const acct = await ca.account("shopify");
    assert.equal((await cb.shopifyApi(acct.credentials.access_token!)).status, 401);
    const other = await cb.account("shopify");
    assert.equal(
      (await cb.shopifyRefresh(other.credentials.refresh_token!)).status,
      401,
      "default app",
    );
    const res = await cb.post("/shopify/admin/oauth/access_token", {
      json: {
        client_id: "custom-client",
        client_secret: "custom-secret",
        refresh_token: other.credentials.refresh_token,
        grant_type: "refresh_token",
      },
    });
    assert.equal(res.status, 200);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("latency delays provider responses but not the control API", () =>
  withSandbox(async (c) => {
    const acct = await c.account("maystro");
    assert.deepEqual((await c.post("/_sandbox/latency", { json: { ms: 100 } })).body, { ms: 100 });
    let started = performance.now();
    assert.equal((await c.maystroApi(acct.credentials.api_token!)).status, 200);
    assert.ok(performance.now() - started >= 95, "provider call delayed");
    started = performance.now();
    await c.get("/_sandbox/health");
    assert.ok(performance.now() - started < 95, "control API not delayed");
  }));

Deno.test("two thousand accounts refresh concurrently, each exactly once", () =>
  withSandbox(async (c) => {
    const accounts = [];
    for (let i = 0; i < 2000; i += 200) {
      accounts.push(
        ...await Promise.all(Array.from({ length: 200 }, () => c.account("lightspeed"))),
      );
    }
    for (let i = 0; i < accounts.length; i += 250) {
      const replies = await Promise.all(
        accounts.slice(i, i + 250).map((a) => c.lightspeedRefresh(a.credentials.refresh_token!)),
      );
      assert.ok(replies.every((r) => r.status === 200));
    }
    const stats = await c.get("/_sandbox/stats");
    assert.equal(stats.body.refresh_calls, 2000);
    assert.equal(Object.keys(stats.body.by_account).length, 2000);
  }));

Deno.test("the CLI prints its URL, serves, and exits cleanly on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "sandbox/main.ts", "--port", "0"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const url = /sandbox listening on (http:\/\/\S+)/.exec(out)?.[1];
  assert.ok(url, `printed its URL: ${out}`);
  assert.deepEqual((await new Client(url).get("/_sandbox/health")).body, { ok: true });
  child.kill("SIGTERM");
  while (!(await reader.read()).done) { /* drain */ }
  const status = await child.status;
  assert.equal(status.code, 0);
});
