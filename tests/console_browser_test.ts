// The web console in a real browser: Debian's Chromium driven by playwright-core, against the
// served `console`, `connect`, `backfill`, `refresh-tokens` and `disconnect` functions, an
// in-process sandbox playing the providers (OAuth included) and a database of its own. The
// backfill the page starts goes through public.start_backfill() and pg_net to the backfill
// function, as on a project. Screenshots of the main pages at 360 and 1280 px land in
// tests/artifacts/ (gitignored). Every answer the browser received is checked against the stack's
// secrets and every provider token stored or issued: none may appear.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { startSandbox } from "../sandbox/server.ts";
import { DEMO_USERS } from "../functions-shared/console/demo_users.ts";
import { readCredentials } from "../functions-shared/db/credentials.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "../scripts/local/chromium.ts";
import { freePort, paths } from "../scripts/local/util.ts";
import {
  createTestDatabase,
  localSecrets,
  serveFunctionsFor,
  storeVaultSecrets,
  testDeps,
} from "./helpers/stack.ts";
import { SandboxControl } from "./helpers/sandbox.ts";

const ARTIFACTS = join(paths.root, "tests", "artifacts");
const WIDTHS = [360, 1280] as const;

interface Seen {
  url: string;
  status: number;
  text: string;
}

Deno.test("console in Chromium: sign in, connect, backfill, reconnect, RLS per owner, no token shown", async (t) => {
  const db = await createTestDatabase();
  const sandboxServer = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(sandboxServer.url);
  const port = freePort();
  const supabaseUrl = `http://127.0.0.1:${port}`;
  const functions = await serveFunctionsFor(
    db,
    ["console", "connect", "backfill", "refresh-tokens", "disconnect"],
    {
      port,
      env: {
        SUPABASE_URL: supabaseUrl,
        SHOPIFY_BASE_URL: `${sandboxServer.url}/shopify`,
        LIGHTSPEED_BASE_URL: `${sandboxServer.url}/lightspeed`,
        QUICKBOOKS_BASE_URL: `${sandboxServer.url}/quickbooks`,
        TETHER_CONSOLE_LOCAL_SIGN_IN: "1",
      },
    },
  );
  await storeVaultSecrets(db.sql, functions);
  const consoleUrl = `${functions.functionsUrl}/console/`;
  const userDir = Deno.makeTempDirSync({ prefix: "tether-chromium-" });
  let context: BrowserContext | undefined;
  const seen: Seen[] = [];
  const issuedTokens: string[] = []; // every provider credential a sandbox account was given
  let signingInTo: string | undefined; // the sandbox account the person signs in to next
  mkdirSync(ARTIFACTS, { recursive: true });

  /** Registers a sandbox account through the connect function, owned by the demo user. */
  async function seedConnection(provider: "shopify" | "shiphero", name: string) {
    const account = await sandbox.account(
      provider,
      provider === "shopify" ? "expiring" : undefined,
    );
    issuedTokens.push(...Object.values(account.credentials));
    await sandbox.call("POST", `/data/${provider}/${account.external_id}/seed`, {
      orders: 40,
      customers: 10,
      spread_days: 20,
    });
    const res = await fetch(`${functions.functionsUrl}/connect`, {
      method: "POST",
      headers: { apikey: functions.secretKey, "content-type": "application/json" },
      body: JSON.stringify({
        provider,
        // A shop is known by its myshopify.com domain (what the OAuth callback names it by).
        external_id: account.config.shop ?? account.external_id,
        name,
        credentials: account.credentials,
        config: sandbox.configFor(account),
        owner_id: DEMO_USERS.demo.id,
      }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return { id: body.connection_id as string, accountId: account.external_id };
  }

  async function shoot(page: Page, name: string) {
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: width === 360 ? 780 : 900 });
      await page.screenshot({
        path: join(ARTIFACTS, `console-${name}-${width}.png`),
        fullPage: true,
      });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  /** Signs out whoever is signed in, then signs in as `who` with the local demo sign-in. */
  async function switchUser(page: Page, who: "demo" | "other") {
    await page.goto(consoleUrl);
    await page.locator("#who", { hasText: "@tether.local" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: `Sign in as ${who}@tether.local` }).click();
    await page.locator("#who", { hasText: `${who}@tether.local` }).waitFor();
  }

  /** The session token the page holds (sessionStorage), for calling the API as that user. */
  async function sessionToken(page: Page): Promise<string> {
    return await page.evaluate(() =>
      JSON.parse(sessionStorage.getItem("tether.console.session")!).access_token as string
    );
  }

  try {
    const shop = await seedConnection("shopify", "Demo Shopify");
    await seedConnection("shiphero", "Demo ShipHero");

    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    context.on("response", async (res) => {
      const text = await res.text().catch(() => "");
      seen.push({
        url: res.url(),
        status: res.status(),
        text: `${JSON.stringify(await res.allHeaders())}\n${text}`,
      });
    });
    // The person signs in to the shop they named: Shopify's authorize page lives on the shop's own
    // domain (https://{shop}/admin/oauth/authorize); the sandboxes share one host, so the sandbox
    // is told which account approves (its `account` parameter), as tests/oauth_test.ts does.
    const authorize = (url: URL) =>
      url.origin === sandboxServer.url && url.pathname === "/shopify/admin/oauth/authorize";
    await context.route(authorize, async (route) => {
      const url = new URL(route.request().url());
      if (signingInTo) url.searchParams.set("account", signingInTo);
      await route.fulfill({ response: await route.fetch({ url: url.href, maxRedirects: 0 }) });
    });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));

    await t.step("the page is served with a strict CSP and a demo user signs in", async () => {
      const res = await fetch(consoleUrl);
      await res.body?.cancel();
      const csp = res.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
      await page.goto(consoleUrl);
      await shoot(page, "sign-in");
      // Keyboard only: Tab to the demo sign-in and press Enter.
      const demoButton = page.getByRole("button", { name: "Sign in as demo@tether.local" });
      await demoButton.waitFor();
      for (
        let i = 0;
        i < 12 &&
        !(await demoButton.evaluate((b: { matches(s: string): boolean }) => b.matches(":focus")));
        i++
      ) {
        await page.keyboard.press("Tab");
      }
      await page.keyboard.press("Enter");
      await page.locator("#who", { hasText: "demo@tether.local" }).waitFor();
    });

    await t.step("the connection list shows the demo connections with their health", async () => {
      const table = page.locator("#connections");
      await table.getByRole("link", { name: "Demo Shopify" }).waitFor();
      await table.getByRole("link", { name: "Demo ShipHero" }).waitFor();
      const row = table.locator("tr", { hasText: "Demo Shopify" });
      assert.match(await row.innerText(), /active/);
      assert.match(await row.innerText(), /in \d+m|in \d+h/, "token expiry shown");
      await shoot(page, "connections");
    });

    await t.step("connect a sandbox Shopify shop through OAuth", async () => {
      const account = await sandbox.account("shopify");
      signingInTo = account.external_id;
      await page.getByRole("link", { name: "Connect an account" }).click();
      await page.getByLabel("Shop domain (…myshopify.com)").fill(account.config.shop!);
      await page.locator('form[data-provider="shopify"]').getByLabel("Name").fill("OAuth shop");
      await shoot(page, "connect");
      await page.getByRole("button", { name: "Connect Shopify" }).click();
      await page.getByRole("heading", { name: "Shopify is connected" }).waitFor();
      await page.goto(consoleUrl);
      await page.locator("#connections").getByRole("link", { name: "OAuth shop" }).waitFor();
      const [row] = await db.sql<{ owner_id: string; status: string }[]>`
        select owner_id, status from tether.connections where name = 'OAuth shop'`;
      assert.deepEqual({ ...row }, { owner_id: DEMO_USERS.demo.id, status: "active" });
    });

    await t.step(
      "a backfill started from the page refuses a bad range and reaches 100 %",
      async () => {
        await page.locator("#connections").getByRole("link", { name: "Demo Shopify" }).click();
        await page.getByRole("heading", { name: "Demo Shopify (Shopify)" }).waitFor();
        const day = (offset: number) =>
          new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
        // The page refuses what start_backfill would: an end before the start.
        await page.getByLabel("From").fill(day(-1));
        await page.getByLabel("To (inclusive)").fill(day(-3));
        await page.getByRole("button", { name: "Start backfill" }).click();
        await page.getByRole("alert").filter({ hasText: "must not be after" }).waitFor();
        // The server is the truth: start_backfill's own refusal reaches the caller as it is.
        const refused = await fetch(`${consoleUrl}api/connections/${shop.id}/backfills`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${await sessionToken(page)}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            stream: "orders",
            range_start: "2026-01-01T00:00:00Z",
            range_end: new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z"),
          }),
        });
        const refusal = await refused.json();
        assert.equal(refused.status, 400);
        assert.match(refusal.message, /is in the future/);

        await page.getByLabel("From").fill(day(-5));
        await page.getByLabel("To (inclusive)").fill(day(0));
        await page.getByRole("button", { name: "Start backfill" }).click();
        const row = page.locator("#backfills tbody tr").first();
        await row.filter({ hasText: "succeeded" }).waitFor({ timeout: 90_000 });
        assert.match(await row.innerText(), /100 %/);
        assert.equal(await row.locator("progress").getAttribute("value"), "100");
        await shoot(page, "connection");
      },
    );

    await t.step(
      "a revoked connection shows Reconnect with the README's hint, and reconnects",
      async () => {
        // Shopify refuses the refresh token (invalid_grant) on the next refresh: reauth_required.
        await sandbox.fault({
          provider: "shopify",
          endpoint: "token",
          kind: "invalid_grant",
          count: 1,
        });
        const refresh = await fetch(`${functions.functionsUrl}/refresh-tokens`, {
          method: "POST",
          headers: { apikey: functions.secretKey, "content-type": "application/json" },
          body: JSON.stringify({ connection_id: shop.id, force: true }),
        });
        await refresh.body?.cancel();
        const [before] = await db.sql<{ status: string }[]>`
        select status from tether.connections where id = ${shop.id}`;
        assert.equal(before!.status, "reauth_required");
        await page.reload();
        await page.locator("#detail-error").getByText("What to do: reconnect the account")
          .waitFor();
        await shoot(page, "reauth");
        signingInTo = shop.accountId;
        await page.getByRole("button", { name: "Reconnect" }).click();
        await page.getByRole("heading", { name: "Shopify is connected" }).waitFor();
        const [after] = await db.sql<{ status: string; owner_id: string; name: string }[]>`
        select status, owner_id, name from tether.connections where id = ${shop.id}`;
        assert.deepEqual({ ...after }, {
          status: "active",
          owner_id: DEMO_USERS.demo.id,
          name: "Demo Shopify",
        });
      },
    );

    await t.step("a token-based account connects through the form, then disconnects", async () => {
      const account = await sandbox.account("shiphero");
      issuedTokens.push(...Object.values(account.credentials));
      await page.goto(`${consoleUrl}#/connect`);
      const form = page.locator("#token-form");
      await form.getByLabel("Provider", { exact: true }).selectOption("shiphero");
      await form.getByLabel("Account id at the provider").fill(account.external_id);
      await form.getByLabel("Name", { exact: true }).fill("Form warehouse");
      await form.getByLabel(/^Credentials/).fill(JSON.stringify(account.credentials));
      await form.getByLabel(/^Config/).fill(JSON.stringify(sandbox.configFor(account)));
      await form.getByRole("button", { name: "Connect" }).click();
      await page.getByRole("heading", { name: "Form warehouse (ShipHero)" }).waitFor();
      assert.equal(await form.getByLabel(/^Credentials/).inputValue(), "", "not kept on the page");
      await page.getByRole("button", { name: "Disconnect…" }).click();
      await page.getByRole("button", { name: "Yes, disconnect" }).click();
      await page.getByRole("heading", { name: "Connections" }).waitFor();
      for (let i = 0; i < 60; i++) {
        const [row] = await db.sql<{ status: string }[]>`
          select status from tether.connections where name = 'Form warehouse'`;
        if (row?.status === "disabled") break;
        await new Promise((r) => setTimeout(r, 500));
      }
      const [row] = await db.sql<{ status: string; owner_id: string; creds: number }[]>`
        select status, owner_id,
               (select count(*)::int from tether.credentials k where k.connection_id = c.id) as creds
          from tether.connections c where name = 'Form warehouse'`;
      assert.deepEqual({ ...row }, { status: "disabled", owner_id: DEMO_USERS.demo.id, creds: 0 });
    });

    await t.step("a user of another owner sees none of it, in the page or the API", async () => {
      await switchUser(page, "other");
      await page.getByText("No connections you can see yet").waitFor();
      assert.equal(await page.locator("#connections tbody tr").count(), 0);
      await shoot(page, "other-owner");
      const token = await sessionToken(page);
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
      const detail = await fetch(`${consoleUrl}api/connections/${shop.id}`, { headers });
      assert.equal(detail.status, 404, await detail.text());
      const backfill = await fetch(`${consoleUrl}api/connections/${shop.id}/backfills`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          stream: "orders",
          range_start: "2026-01-01T00:00:00Z",
          range_end: "2026-01-02T00:00:00Z",
        }),
      });
      assert.equal(backfill.status, 404, await backfill.text());
      const disconnect = await fetch(`${consoleUrl}api/connections/${shop.id}/disconnect`, {
        method: "POST",
        headers,
        body: "{}",
      });
      assert.equal(disconnect.status, 404, await disconnect.text());
      const [row] = await db.sql<{ status: string }[]>`
        select status from tether.connections where id = ${shop.id}`;
      assert.equal(row!.status, "active", "nothing was done for the other owner");
    });

    await t.step("no page or API answer the browser received holds a token or secret", async () => {
      const secrets = await localSecrets();
      const deps = await testDeps(db);
      const stored: string[] = [];
      for (const { id } of await db.sql<{ id: string }[]>`select id from tether.connections`) {
        const { values } = await readCredentials(db.sql, deps.vault, id).catch(() => ({
          values: {},
        }));
        stored.push(...Object.values(values as Record<string, string>));
      }
      const known = [
        secrets.secretKey,
        secrets.invokeKey,
        secrets.jwtSecret,
        ...secrets.tokenEncryptionKeys.split(",").map((k) => k.split(":")[1]!),
        "sandbox-shopify-secret",
        ...issuedTokens,
        ...stored,
      ].filter((s) => typeof s === "string" && s.length >= 8);
      assert.ok(stored.length >= 4, "the stored tokens are part of the check");
      assert.ok(seen.length > 20, `the browser's answers were recorded (${seen.length})`);
      for (const answer of seen) {
        for (const secret of known) {
          assert.ok(
            !answer.text.includes(secret),
            `${answer.url} (HTTP ${answer.status}) holds a secret or token`,
          );
        }
      }
      assert.deepEqual(consoleErrors.filter((e) => /Content Security Policy/.test(e)), []);
    });
  } finally {
    await context?.close().catch(() => {});
    Deno.removeSync(userDir, { recursive: true });
    await functions.stop();
    await sandboxServer.close();
    await db.drop();
  }
});
