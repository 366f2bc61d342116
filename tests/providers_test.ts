// Provider adapters (auth half) against the real provider sandboxes: every test starts its own
// sandbox on a free port, creates accounts and faults through its control API, and drives the
// adapters through the registry exactly as the refresh job will.

import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { fingerprint, type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import {
  classifyHttpError,
  parseRetryAfter,
  throwOnGraphqlErrors,
} from "../functions-shared/providers/http.ts";
import { formatIssues } from "../functions-shared/validation.ts";
import { adapterFor, adapters, getAdapter } from "../functions-shared/providers/registry.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type Credentials,
  mergeCredentials,
  ProviderError,
  type ProviderErrorCode,
  type ProviderName,
  PROVIDERS,
} from "../functions-shared/providers/types.ts";
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Assertions for provider errors

/** Asserts `promise` rejects with a ProviderError of `code` that shows none of `secrets`. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: ProviderErrorCode,
  secrets: readonly string[],
): Promise<ProviderError> {
  let error: unknown;
  await assert.rejects(
    promise,
    (caught) => {
      error = caught;
      return true;
    },
    `expected a ProviderError "${code}", but nothing was thrown`,
  );
  assert.ok(
    error instanceof ProviderError,
    `expected a ProviderError "${code}", got ${String(error)}`,
  );
  assert.equal(error.code, code, `code of "${error.message}"`);
  assertNoSecrets(error, secrets);
  return error;
}

/** Nothing a caller might log or store may contain a token or a secret. */
function assertNoSecrets(error: ProviderError, secrets: readonly string[]): void {
  const shown = [
    error.message,
    JSON.stringify(error.toJSON()),
    String(error.stack),
    String(error.cause),
  ]
    .join("\n");
  for (const secret of secrets) {
    assert.ok(!shown.includes(secret), `error text contains a secret: ${error.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sandbox helpers

const OAUTH: readonly ProviderName[] = ["shiphero", "shopify", "lightspeed", "quickbooks"];
const WITH_APP: readonly ProviderName[] = ["shopify", "lightspeed", "quickbooks"];
const NOW = new Date("2026-03-01T12:00:00Z");

type Account = SandboxAccount;

async function withSandbox(fn: (sb: SandboxControl) => Promise<void> | void): Promise<void> {
  const server = await startSandbox({ port: 0 });
  try {
    await fn(new SandboxControl(server.url));
  } finally {
    await server.close();
  }
}

function connectionOf(sb: SandboxControl, account: Account): ConnectionRef {
  return {
    id: crypto.randomUUID(),
    provider: account.provider,
    externalId: account.external_id,
    config: sb.configFor(account),
  };
}

async function liveRefreshFingerprint(sb: SandboxControl, account: Account) {
  return (await sb.inspect(account.provider, account.external_id)).live_refresh_token_fingerprint;
}

function appOf(provider: ProviderName) {
  return { clientId: `sandbox-${provider}-client`, clientSecret: `sandbox-${provider}-secret` };
}

function context(overrides: Partial<AdapterContext> = {}): AdapterContext {
  return { fetch, now: () => NOW, app: appOf, ...overrides };
}

/** Every value a message must not contain for this account. */
function secretsOf(account: Account, ...more: Credentials[]): string[] {
  return [
    ...Object.values(account.credentials),
    ...more.flatMap((c) => Object.values(c)),
    appOf(account.provider).clientSecret,
  ];
}

/** A fresh account and its connection, for one provider. */
async function setup(sb: SandboxControl, provider: ProviderName, kind?: "legacy" | "expiring") {
  const account = await sb.account(provider, kind);
  return { account, conn: connectionOf(sb, account), adapter: getAdapter(provider) };
}

const seconds = (s: number) => new Date(NOW.getTime() + s * 1000).toISOString();

// ---------------------------------------------------------------------------------------------
// Registry and schemas

Deno.test("the registry has one adapter per provider, each under its own name", () => {
  assert.deepEqual(Object.keys(adapters).sort(), [...PROVIDERS].sort());
  for (const provider of PROVIDERS) {
    assert.equal(adapterFor(provider).provider, provider);
    assert.ok(adapterFor(provider).facts.refreshMarginSeconds >= 0);
  }
  assert.equal(adapters.shopify.facts.apiVersion, "2026-10");
  assert.equal(adapters.quickbooks.facts.defaultRetryAfterSeconds, 60);
  assert.equal(adapters.lightspeed.facts.refreshTokenIdleSeconds, 30 * 24 * 3600);
  assert.throws(() => adapterFor("etsy"), "an unknown provider name throws");
});

Deno.test("connect schemas accept what the sandbox hands out and reject wrong field names", async () => {
  await withSandbox(async (sb) => {
    for (const provider of PROVIDERS) {
      const { account, conn, adapter } = await setup(sb, provider);
      assert.ok(
        adapter.credentialsSchema.safeParse(account.credentials).success,
        `${provider} credentials`,
      );
      assert.ok(adapter.configSchema.safeParse(conn.config).success, `${provider} config`);
    }
  });
  assert.equal(adapters.shopify.credentialsSchema.safeParse({ accessToken: "x" }).success, false);
  assert.equal(adapters.maystro.credentialsSchema.safeParse({ api_token: "" }).success, false);
  assert.equal(adapters.shopify.configSchema.safeParse({ shop: "example.com" }).success, false);
  assert.equal(
    adapters.quickbooks.configSchema.safeParse({ realm_id: "123", api_base_url: "ftp://x" })
      .success,
    false,
  );
});

Deno.test("a config that misses a field is misconfigured and names the field", async () => {
  const conn: ConnectionRef = { id: "c1", provider: "shopify", externalId: "s", config: {} };
  const error = await rejectsWith(
    adapters.shopify.refresh(context(), conn, { access_token: "shpat_secret_value" }),
    "misconfigured",
    ["shpat_secret_value"],
  );
  assert.ok(error.message.includes('shopify connection config: field "shop"'), error.message);
});

// ---------------------------------------------------------------------------------------------
// Happy paths

Deno.test("shiphero refresh keeps the stored refresh token and returns a 28-day access token", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shiphero");
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.deepEqual(Object.keys(grant.credentials), ["access_token"]);
    assert.ok(
      grant.credentials.access_token !== account.credentials.access_token,
      "a new access token",
    );
    assert.equal(grant.refreshTokenRotated, false);
    assert.equal(grant.accessTokenExpiresAt?.toISOString(), seconds(2_419_200));
    assert.equal(grant.refreshTokenExpiresAt, null);
    const merged = mergeCredentials(account.credentials, grant);
    assert.equal(merged.refresh_token, account.credentials.refresh_token);
    assert.equal(
      await liveRefreshFingerprint(sb, account),
      await fingerprint(merged.refresh_token!),
    );
    await adapter.verify(context(), conn, merged);
    // The static refresh token keeps working.
    await adapter.refresh(context(), conn, merged);
    assert.equal(await sb.refreshCalls(account.provider, account.external_id), 2);
  });
});

Deno.test("shopify refresh rotates both tokens and the new refresh token is the live one", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shopify", "expiring");
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.equal(grant.refreshTokenRotated, true);
    assert.ok(grant.credentials.refresh_token !== account.credentials.refresh_token);
    assert.equal(
      await liveRefreshFingerprint(sb, account),
      await fingerprint(grant.credentials.refresh_token!),
    );
    assert.equal(grant.accessTokenExpiresAt?.toISOString(), seconds(3600));
    assert.equal(grant.refreshTokenExpiresAt?.toISOString(), seconds(7_776_000));
    const merged = mergeCredentials(account.credentials, grant);
    await adapter.verify(context(), conn, merged);
    // The rotated-away token is dead. The adapter reports what the provider says; deciding that a
    // race with another worker is harmless (re-read the row) is the refresh job's business.
    const error = await rejectsWith(
      adapter.refresh(context(), conn, account.credentials),
      "invalid_grant",
      secretsOf(account, grant.credentials),
    );
    assert.ok(error.reauthRequired);
  });
});

Deno.test("shopify legacy token: refresh only verifies it and reports no expiry", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shopify", "legacy");
    assert.equal(account.credentials.refresh_token, undefined);
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.deepEqual(grant, {
      credentials: { access_token: account.credentials.access_token },
      accessTokenExpiresAt: null,
      refreshTokenExpiresAt: null,
      refreshTokenRotated: false,
    });
    assert.equal(await sb.refreshCalls(account.provider, account.external_id), 0);
  });
});

Deno.test("lightspeed refresh rotates, takes the lifetime from expires_in and sets 30 idle days", async () => {
  await withSandbox(async (sb) => {
    // The lifetime is UNCONFIRMED (30 min to 7 days): whatever the response says wins.
    await sb.call("POST", "/config", { lightspeed: { access_token_seconds: 1800 } });
    const { account, conn, adapter } = await setup(sb, "lightspeed");
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.equal(grant.refreshTokenRotated, true);
    assert.equal(
      await liveRefreshFingerprint(sb, account),
      await fingerprint(grant.credentials.refresh_token!),
    );
    assert.equal(grant.accessTokenExpiresAt?.toISOString(), seconds(1800));
    assert.equal(grant.refreshTokenExpiresAt?.toISOString(), seconds(30 * 86_400));
    await adapter.verify(context(), conn, mergeCredentials(account.credentials, grant));
    // "the old one is revoked as soon as a new one is issued"
    await rejectsWith(
      adapter.refresh(context(), conn, account.credentials),
      "invalid_grant",
      secretsOf(account, grant.credentials),
    );
  });
});

Deno.test("lightspeed without expires_in falls back to the unix time in expires", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "lightspeed");
    await sb.fault({
      provider: "lightspeed",
      endpoint: "token",
      kind: "missing_field",
      field: "expires_in",
    });
    const before = Date.now();
    const grant = await adapter.refresh(context(), conn, account.credentials);
    // `expires` is on the sandbox's (real-time) clock, in whole seconds.
    const expiresAt = grant.accessTokenExpiresAt?.getTime() ?? 0;
    assert.ok(Math.abs(expiresAt - (before + 86_400_000)) < 5000, `expires at ${expiresAt}`);
  });
});

Deno.test("quickbooks refresh keeps the newest refresh token and parses the hard expiry", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "quickbooks");
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.equal(grant.refreshTokenRotated, true);
    assert.ok(grant.credentials.refresh_token !== undefined);
    assert.equal(
      await liveRefreshFingerprint(sb, account),
      await fingerprint(grant.credentials.refresh_token),
    );
    assert.equal(grant.accessTokenExpiresAt?.toISOString(), seconds(3600));
    assert.ok(grant.refreshTokenExpiresAt !== null, "rolling expiry");
    assert.ok(
      grant.refreshTokenExpiresAt.getTime() > NOW.getTime() + 90 * 86_400_000,
      "about 101 days",
    );
    assert.ok(grant.refreshTokenHardExpiresAt instanceof Date, "hard expiry sent on request");
    assert.ok(
      grant.refreshTokenHardExpiresAt.getTime() >= grant.refreshTokenExpiresAt.getTime(),
      "hard expiry is not before the rolling one",
    );
    await adapter.verify(context(), conn, mergeCredentials(account.credentials, grant));
  });
});

Deno.test("maystro verify accepts the api token and refresh returns it unchanged", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "maystro");
    await adapter.verify(context(), conn, account.credentials);
    assert.equal(adapter.accessToken(account.credentials), account.credentials.api_token);
    const grant = await adapter.refresh(context(), conn, account.credentials);
    assert.deepEqual(grant, {
      credentials: { api_token: account.credentials.api_token },
      accessTokenExpiresAt: null,
      refreshTokenExpiresAt: null,
      refreshTokenRotated: false,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Errors, per provider

Deno.test("a rejected access token is unauthorized, for every provider", async () => {
  await withSandbox(async (sb) => {
    for (const provider of PROVIDERS) {
      const { account, conn, adapter } = await setup(sb, provider);
      const field = provider === "maystro" ? "api_token" : "access_token";
      const bogus = { ...account.credentials, [field]: `bogus-${crypto.randomUUID()}` };
      const error = await rejectsWith(
        adapter.verify(context(), conn, bogus),
        "unauthorized",
        [...secretsOf(account), ...Object.values(bogus)],
      );
      assert.equal(error.status, 401, provider);
      assert.equal(error.retryable || error.reauthRequired, false, provider);
    }
  });
});

Deno.test("invalid_grant from the token endpoint requires reauth and says to reconnect", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "token", kind: "invalid_grant" });
      const error = await rejectsWith(
        adapter.refresh(context(), conn, account.credentials),
        "invalid_grant",
        secretsOf(account),
      );
      assert.ok(error.reauthRequired, provider);
      assert.equal(error.retryable, false, provider);
      assert.ok(
        error.message.includes(`reconnect the ${adapter.facts.displayName} account`),
        error.message,
      );
    }
  });
});

Deno.test("an unknown refresh token is invalid_grant without any fault (shiphero answers 403)", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shiphero");
    const creds = { refresh_token: `sb_sh_rt_${crypto.randomUUID()}` };
    const error = await rejectsWith(
      adapter.refresh(context(), conn, creds),
      "invalid_grant",
      [...secretsOf(account), creds.refresh_token],
    );
    assert.equal(error.status, 403);
  });
});

Deno.test("shiphero: a 401 from the refresh call without an OAuth error is still invalid_grant (reconnect)", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shiphero");
    await sb.fault({ provider: "shiphero", endpoint: "token", kind: "unauthorized" });
    const error = await rejectsWith(
      adapter.refresh(context(), conn, account.credentials),
      "invalid_grant",
      secretsOf(account),
    );
    assert.equal(error.status, 401);
    assert.ok(error.reauthRequired);
    assert.match(error.message, /reconnect the ShipHero account/);
  });
});

Deno.test("a 5xx from the token endpoint is a retryable server_error", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "token", kind: "5xx" });
      const error = await rejectsWith(
        adapter.refresh(context(), conn, account.credentials),
        "server_error",
        secretsOf(account),
      );
      assert.ok(error.retryable && !error.reauthRequired, provider);
      assert.ok(error.status !== undefined && error.status >= 500, provider);
      // The fault is spent; the next attempt succeeds.
      await adapter.refresh(context(), conn, account.credentials);
    }
  });
});

Deno.test("a 429 is rate_limited with the wait from Retry-After", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "token", kind: "429", retry_after: 7 });
      const error = await rejectsWith(
        adapter.refresh(context(), conn, account.credentials),
        "rate_limited",
        secretsOf(account),
      );
      assert.ok(error.retryable, provider);
      assert.equal(error.retryAfterMs, 7000, provider);
    }
  });
});

Deno.test("a 429 on an API call is rate_limited too, for every provider", async () => {
  await withSandbox(async (sb) => {
    for (const provider of PROVIDERS) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "api", kind: "429", retry_after: 3 });
      const error = await rejectsWith(
        adapter.verify(context(), conn, account.credentials),
        "rate_limited",
        secretsOf(account),
      );
      assert.equal(error.retryAfterMs, 3000, provider);
      assert.equal(error.endpoint, "api", provider);
    }
  });
});

Deno.test("a token endpoint that hangs is a retryable timeout after timeoutMs", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "token", kind: "hang" });
      const started = performance.now();
      const error = await rejectsWith(
        adapter.refresh(context({ timeoutMs: 300 }), conn, account.credentials),
        "timeout",
        secretsOf(account),
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 5000, `${provider} timed out after ${elapsed} ms`);
      assert.ok(error.retryable, provider);
      assert.ok(error.message.includes("300 ms"), error.message);
    }
  });
});

Deno.test("an API call that hangs is a timeout too (maystro)", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "maystro");
    await sb.fault({ provider: "maystro", endpoint: "api", kind: "hang" });
    await rejectsWith(
      adapter.verify(context({ timeoutMs: 300 }), conn, account.credentials),
      "timeout",
      secretsOf(account),
    );
  });
});

Deno.test("a token response that is not JSON is bad_response and says so", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({ provider, endpoint: "token", kind: "malformed_json" });
      const error = await rejectsWith(
        adapter.refresh(context(), conn, account.credentials),
        "bad_response",
        secretsOf(account),
      );
      assert.ok(error.retryable, provider);
      assert.ok(
        error.message.includes(`${provider} token endpoint returned a body that is not JSON`),
        error.message,
      );
    }
  });
});

Deno.test("a token response missing a field is bad_response naming the field", async () => {
  await withSandbox(async (sb) => {
    for (const provider of OAUTH) {
      const { account, conn, adapter } = await setup(sb, provider);
      await sb.fault({
        provider,
        endpoint: "token",
        kind: "missing_field",
        field: "access_token",
      });
      const error = await rejectsWith(
        adapter.refresh(context(), conn, account.credentials),
        "bad_response",
        secretsOf(account),
      );
      assert.ok(
        error.message.includes(
          `${provider} refresh response: field "access_token": expected string, received undefined`,
        ),
        error.message,
      );
    }
    // A field only some providers send: QuickBooks' rolling refresh-token expiry.
    const { account, conn, adapter } = await setup(sb, "quickbooks");
    await sb.fault({
      provider: "quickbooks",
      endpoint: "token",
      kind: "missing_field",
      field: "x_refresh_token_expires_in",
    });
    const error = await rejectsWith(
      adapter.refresh(context(), conn, account.credentials),
      "bad_response",
      secretsOf(account),
    );
    assert.ok(
      error.message.includes(
        'field "x_refresh_token_expires_in": expected number, received undefined',
      ),
      error.message,
    );
  });
});

Deno.test("a verify response missing a field is bad_response naming the GraphQL path", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shopify");
    await sb.fault({
      provider: "shopify",
      endpoint: "api",
      kind: "missing_field",
      field: "data.shop",
    });
    const error = await rejectsWith(
      adapter.verify(context(), conn, account.credentials),
      "bad_response",
      secretsOf(account),
    );
    assert.ok(
      error.message.includes('shopify verify response: field "data.shop": expected object'),
      error.message,
    );
  });
});

Deno.test("wrong app credentials are misconfigured and name the env vars", async () => {
  await withSandbox(async (sb) => {
    for (const provider of WITH_APP) {
      const { account, conn, adapter } = await setup(sb, provider);
      const wrong = { clientId: `sandbox-${provider}-client`, clientSecret: "not-the-secret-123" };
      const error = await rejectsWith(
        adapter.refresh(context({ app: () => wrong }), conn, account.credentials),
        "misconfigured",
        [...secretsOf(account), wrong.clientSecret],
      );
      const upper = provider.toUpperCase();
      assert.ok(
        error.message.includes(`${upper}_CLIENT_ID and ${upper}_CLIENT_SECRET`),
        error.message,
      );
      assert.equal(error.retryable || error.reauthRequired, false, provider);
    }
  });
});

Deno.test("missing app credentials are misconfigured before any request is sent", async () => {
  await withSandbox(async (sb) => {
    for (const provider of WITH_APP) {
      const { account, conn, adapter } = await setup(sb, provider);
      const error = await rejectsWith(
        adapter.refresh(context({ app: () => undefined }), conn, account.credentials),
        "misconfigured",
        secretsOf(account),
      );
      assert.ok(error.message.includes(`${provider.toUpperCase()}_CLIENT_SECRET`), error.message);
      assert.equal(await sb.refreshCalls(account.provider, account.external_id), 0, provider);
    }
  });
});

Deno.test("a provider that cannot be reached is a retryable network error", async () => {
  let url = "";
  await withSandbox((sb) => {
    url = sb.url;
  });
  const conn: ConnectionRef = {
    id: "c1",
    provider: "shiphero",
    externalId: "x",
    config: { auth_base_url: `${url}/shiphero`, api_base_url: `${url}/shiphero` },
  };
  const error = await rejectsWith(
    adapters.shiphero.refresh(context(), conn, { refresh_token: "sb_sh_rt_secret_value" }),
    "network",
    ["sb_sh_rt_secret_value"],
  );
  assert.ok(error.retryable);
});

Deno.test("the caller's abort signal stops a request as a timeout", async () => {
  await withSandbox(async (sb) => {
    const { account, conn, adapter } = await setup(sb, "shopify");
    await sb.fault({ provider: "shopify", endpoint: "token", kind: "hang" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await rejectsWith(
      adapter.refresh(context({ signal: controller.signal }), conn, account.credentials),
      "timeout",
      secretsOf(account),
    );
    assert.ok(error.message.includes("aborted by the caller"), error.message);
  });
});

// ---------------------------------------------------------------------------------------------
// Pure helpers

Deno.test("Retry-After is read as seconds or as an HTTP date, else undefined", () => {
  assert.equal(parseRetryAfter("2.0", NOW), 2000);
  assert.equal(parseRetryAfter(" 120 ", NOW), 120_000);
  assert.equal(parseRetryAfter(new Date(NOW.getTime() + 30_000).toUTCString(), NOW), 30_000);
  assert.equal(parseRetryAfter(new Date(NOW.getTime() - 30_000).toUTCString(), NOW), 0);
  assert.equal(parseRetryAfter("-5", NOW), undefined);
  assert.equal(parseRetryAfter("soon", NOW), undefined);
  assert.equal(parseRetryAfter(null, NOW), undefined);
});

Deno.test("zod issues become messages that name the field path and never the value", () => {
  const schema = z.object({ data: z.object({ items: z.array(z.object({ id: z.string() })) }) });
  const result = schema.safeParse({ data: { items: [{ id: "ok" }, { id: 42 }] } });
  assert.ok(!result.success);
  assert.equal(
    formatIssues(result.error.issues),
    'field "data.items[1].id": expected string, received number',
  );
  const secret = z.object({ a: z.number() }).safeParse({ a: "tok_very_secret" });
  assert.ok(!secret.success);
  assert.ok(!formatIssues(secret.error.issues).includes("tok_very_secret"));
});

Deno.test("a 429 without Retry-After waits 60 s for QuickBooks and 2 s for the others", () => {
  const now = NOW;
  for (const provider of PROVIDERS) {
    const error = classifyHttpError(
      { provider, facts: adapters[provider].facts, endpoint: "api", secrets: [] },
      429,
      new Headers(),
      "",
      now,
    );
    assert.equal(error.code, "rate_limited");
    assert.equal(error.retryAfterMs, provider === "quickbooks" ? 60_000 : 2000, provider);
  }
});

Deno.test("error descriptions are shown truncated, with known secrets redacted", () => {
  const secret = "shprt_0123456789abcdef";
  const error = classifyHttpError(
    { provider: "shopify", facts: adapters.shopify.facts, endpoint: "token", secrets: [secret] },
    400,
    new Headers(),
    JSON.stringify({
      error: "invalid_grant",
      error_description: `bad ${secret} ${"x".repeat(500)}`,
    }),
    NOW,
  );
  assert.equal(error.code, "invalid_grant");
  assert.ok(!error.message.includes(secret), error.message);
  assert.ok(error.message.includes("invalid_grant: bad [redacted]"), error.message);
  assert.ok(error.message.length < 400, `message of ${error.message.length} chars`);
});

Deno.test("a GraphQL THROTTLED answer (HTTP 200) is rate_limited", () => {
  assert.throws(
    () =>
      throwOnGraphqlErrors({ provider: "shopify", facts: adapters.shopify.facts, secrets: [] }, [
        { message: "Throttled", extensions: { code: "THROTTLED" } },
      ]),
    (caught) => {
      assert.ok(caught instanceof ProviderError);
      assert.deepEqual([caught.code, caught.retryAfterMs], ["rate_limited", 2000]);
      return true;
    },
  );
});
