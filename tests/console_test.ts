// The console's parts below the browser (tests/console_browser_test.ts drives the page): the
// README's troubleshooting hints it shows, who may sign in and how, what a user reads under RLS
// (db/console.ts against the real local Postgres), and the deploy check that ships its page.
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { createCallerAuth, Unauthorized } from "../functions-shared/auth.ts";
import { ERROR_HINTS, hintFor } from "../functions-shared/console/hints.ts";
import { asViewer, connectionActivity, listConnections } from "../functions-shared/db/console.ts";
import { consoleSettings } from "../functions-shared/http/console.ts";
import { checkConfig, CheckError } from "../scripts/local/deploy_checks.ts";
import { paths } from "../scripts/local/util.ts";
import { withTestDatabase } from "./helpers/stack.ts";

const USER_A = "6a0e4f8e-3c1d-4b7a-9a51-0d2f3c4b5a69";
const USER_B = "7b1f5a9f-4d2e-4c8b-8b62-1e3a4d5c6b70";
const SECRET = "console-test-jwt-secret-0123456789abcdef";

/** The README's troubleshooting rows, as their cells (inline code kept as written). */
function readmeRows(): string[][] {
  const readme = Deno.readTextFileSync(join(paths.root, "README.md"));
  const section = readme.slice(
    readme.indexOf("## Troubleshooting"),
    readme.indexOf("## Security model"),
  );
  return section.split("\n").filter((l) => l.startsWith("| ")).map((l) =>
    l.slice(1, -1).split(" | ").map((c) => c.trim())
  );
}

Deno.test("each error-class hint the console shows is the README's troubleshooting row, word for word", () => {
  const rows = readmeRows();
  for (const h of ERROR_HINTS) {
    const row = rows.find((r) => r[0] === h.error);
    assert.ok(row, `README has no troubleshooting row ${h.error}`);
    assert.equal(row[row.length - 1], h.hint, h.error);
  }
  assert.equal(
    hintFor("shopify rejected the refresh token (invalid_grant)"),
    "reconnect the account",
  );
  assert.equal(hintFor("database: connection reset"), ERROR_HINTS[7]!.hint);
  assert.equal(hintFor("something nobody wrote down"), undefined);
  assert.equal(hintFor(null), undefined);
});

Deno.test("the local demo sign-in needs the local flag and a loopback SUPABASE_URL", () => {
  const env = (vars: Record<string, string>) => consoleSettings((n) => vars[n]);
  const flag = { TETHER_CONSOLE_LOCAL_SIGN_IN: "1" };
  assert.equal(env({ ...flag, SUPABASE_URL: "http://127.0.0.1:54321" }).localSignIn, true);
  assert.equal(env({ ...flag, SUPABASE_URL: "http://localhost:54321" }).localSignIn, true);
  assert.equal(env({ ...flag, SUPABASE_URL: "https://abc.supabase.co" }).localSignIn, false);
  assert.equal(env({ ...flag }).localSignIn, false);
  assert.equal(env({ SUPABASE_URL: "http://127.0.0.1:54321" }).localSignIn, false);
  assert.equal(
    env({ SUPABASE_URL: "https://abc.supabase.co", SUPABASE_ANON_KEY: "anon" }).anonKey,
    "anon",
  );
});

Deno.test("a signed-in user's JWT is let in only where users are (the console), never elsewhere", async () => {
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m")
      .sign(new TextEncoder().encode(SECRET));
  const request = (token: string) =>
    new Request("http://x/console/api/me", { headers: { authorization: `Bearer ${token}` } });
  const user = await sign({ role: "authenticated", sub: USER_A, email: "a@example.test" });
  const config = { secretKeys: [], jwtSecret: SECRET };

  const consoleAuth = createCallerAuth(config, { acceptUsers: true });
  const caller = await consoleAuth(request(user));
  assert.equal(caller.via, "user");
  assert.equal(caller.via === "user" && caller.userId, USER_A);
  assert.equal((await consoleAuth(request(await sign({ role: "service_role" })))).via, "jwt");
  for (const claims of [{ role: "anon" }, { role: "authenticated", sub: "not-a-uuid" }]) {
    await assert.rejects(consoleAuth(request(await sign(claims))), Unauthorized);
  }
  await assert.rejects(createCallerAuth(config)(request(user)), /service_role token is required/);
});

Deno.test("a user reads only their own connections, runs and webhook events; an operator reads all", () =>
  withTestDatabase(async (db) => {
    const ids: Record<string, string> = {};
    for (const [owner, name] of [[USER_A, "A shop"], [USER_B, "B shop"]] as const) {
      const [row] = await db.sql<{ id: string }[]>`
        insert into tether.connections (provider, external_id, name, owner_id)
        values ('shopify', ${name}, ${name}, ${owner}) returning id`;
      ids[owner] = row!.id;
      await db.sql`insert into tether.runs (connection_id, kind, status, error)
                   values (${row!.id}, 'refresh', 'failed', 'shopify rejected the refresh token')`;
      await db
        .sql`insert into tether.webhook_events (provider, event_id, connection_id, topic, payload)
                   values ('shopify', ${"evt-" + name}, ${
        row!.id
      }, 'orders/create', '{"secret": 1}')`;
    }
    const a = {
      kind: "user" as const,
      userId: USER_A,
      claims: { sub: USER_A, role: "authenticated" },
    };
    const mine = await asViewer(db.sql, a, (tx) => listConnections(tx));
    assert.deepEqual(mine.map((c) => c.name), ["A shop"]);
    const own = await asViewer(db.sql, a, (tx) => connectionActivity(tx, ids[USER_A]!));
    assert.equal(own.runs.length, 1);
    assert.equal(own.errors.length, 1);
    assert.deepEqual(own.webhook_events.map((w) => w.topic), ["orders/create"]);
    const theirs = await asViewer(db.sql, a, (tx) => connectionActivity(tx, ids[USER_B]!));
    assert.deepEqual(Object.values(theirs).map((rows) => rows.length), [0, 0, 0, 0]);
    // The payload and the provider's event id stay out of a user's reach.
    for (const column of ["payload", "event_id"]) {
      await assert.rejects(
        asViewer(db.sql, a, (tx) => tx.unsafe(`select ${column} from tether.webhook_events`)),
        (err: { code?: string }) => err.code === "42501",
      );
    }
    const all = await asViewer(db.sql, { kind: "operator" }, (tx) => listConnections(tx));
    assert.deepEqual(all.map((c) => c.name), ["A shop", "B shop"]);
  }));

Deno.test("deploy: a function whose static/ files are not all in static_files fails the check", () => {
  const dir = Deno.makeTempDirSync({ prefix: "tether-console-config-" });
  try {
    cpSync(join(paths.root, "supabase"), join(dir, "supabase"), { recursive: true });
    const config = join(dir, "supabase", "config.toml");
    const shipped = checkConfig(dir).find((f) => f.name === "console")!;
    assert.deepEqual(shipped.staticFiles, [
      "supabase/functions/console/static/console.css",
      "supabase/functions/console/static/console.js",
      "supabase/functions/console/static/index.html",
    ]);
    Deno.writeTextFileSync(
      config,
      Deno.readTextFileSync(config).replace(
        'static_files = ["./functions/console/static/*"]',
        'static_files = ["./functions/console/static/index.html"]',
      ),
    );
    assert.throws(() => checkConfig(dir), (err: Error) =>
      err instanceof CheckError &&
      /does not ship supabase\/functions\/console\/static\/console\.js/.test(err.message));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
