// The operator CLI (`npm run tether -- <command>`) as a subprocess, the way a person runs it.
// Work commands run against a fresh test database with its own functions gateway, given to the
// CLI the way a real project is (SUPABASE_URL, TETHER_SERVICE_KEY, DATABASE_URL), so the test is
// isolated; `schedules` runs against the stack's main database, where pg_cron lives.
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { startSandbox } from "../sandbox/server.ts";
import { paths } from "../scripts/local/util.ts";
import { forgetSandboxConnections } from "../scripts/local/stack.ts";
import { generateKeyRingEntry } from "../functions-shared/vault.ts";
import {
  localSecrets,
  runScript,
  type ScriptRun,
  serveFunctionsFor,
  stackEnv,
  withTestDatabase,
} from "./helpers/stack.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";

type Result = ScriptRun;

const BASE_ENV = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/root",
  NO_COLOR: "1",
};

function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return runScript(["scripts/cli.ts", ...args], { env: { ...BASE_ENV, ...env }, clearEnv: true });
}

function ok(r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

function json<T = unknown>(r: Result, what: string): T {
  ok(r, what);
  assert.equal(r.stderr, "", `${what}: nothing on stderr in --json mode`);
  return JSON.parse(r.stdout) as T;
}

const COMMANDS = [
  "status",
  "connect",
  "refresh",
  "sync",
  "runs",
  "backfill",
  "rotate-key",
  "schedules",
  "webhooks",
  "link",
  "unlink",
  "order",
  "notifications",
];

Deno.test("every command has --help, and --help lists them all", async () => {
  const results = await Promise.all([
    cli(["--help"]),
    ...COMMANDS.map((c) => cli([c, "--help"])),
  ]);
  const [general, ...each] = results;
  ok(general!, "--help");
  for (const c of COMMANDS) assert.match(general!.stdout, new RegExp(`^  ${c} `, "m"));
  each.forEach((r, i) => {
    ok(r, `${COMMANDS[i]} --help`);
    assert.ok(r.stdout.startsWith(`usage: npm run tether -- ${COMMANDS[i]}`), r.stdout);
    assert.match(r.stdout, /--json/, `${COMMANDS[i]} --help mentions --json`);
  });
});

Deno.test("usage mistakes exit 2 with a message that says what to do", async () => {
  const [unknown, badUuid, badProvider, badLimit, badStream, badJson, badOption] = await Promise
    .all([
      cli(["frobnicate"]),
      cli(["sync", "--connection", "not-a-uuid"]),
      cli(["refresh", "--provider", "amazon"]),
      cli(["runs", "--limit", "0"]),
      cli(["sync", "invoices"]),
      cli(["connect", "shopify", "x", "X", "--credentials", "{nope"]),
      cli(["status", "--colour"]),
    ]);
  const expect = (r: Result, pattern: RegExp) => {
    assert.equal(r.code, 2, `exit 2: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line, no stack trace: ${r.stderr}`);
  };
  expect(unknown, /^tether: unknown command "frobnicate": one of status, connect, .*--help/);
  expect(badUuid, /--connection must be a uuid, got "not-a-uuid"; list the ids with/);
  expect(badProvider, /unknown provider "amazon": one of shiphero, shopify, lightspeed/);
  expect(badLimit, /--limit must be a whole number/);
  expect(badStream, /the stream must be one of orders, customers, all, got "invoices"/);
  expect(badJson, /--credentials must be a JSON object/);
  expect(badOption, /Unknown option '--colour'.*status --help/);
});

Deno.test("with no stack up, a command says to start it and exits 1", async () => {
  const empty = await Deno.makeTempDir({ prefix: "tether-no-stack-" });
  try {
    const r = await cli(["status"], { TETHER_STATE_DIR: empty });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the local stack is not up: run `npm run stack:up`/);
    const j = await cli(["status", "--json"], { TETHER_STATE_DIR: empty });
    assert.equal(j.code, 1);
    assert.match(JSON.parse(j.stdout).error, /the local stack is not up/);
    // Only part of a project's settings (a shell exporting SUPABASE_URL for something else): the
    // local stack, saying which was chosen and why; --project requires all three.
    const partial = await cli(["status"], {
      SUPABASE_URL: "http://127.0.0.1:1",
      TETHER_STATE_DIR: empty,
    });
    assert.equal(partial.code, 1);
    assert.match(
      partial.stderr,
      /using the local stack \(SUPABASE_URL is set, but not TETHER_SERVICE_KEY or DATABASE_URL; set all three \(or pass --project\)/,
    );
    const project = await cli(["status", "--project"], { SUPABASE_URL: "http://127.0.0.1:1" });
    assert.equal(project.code, 2);
    assert.match(project.stderr, /--project needs .*missing: TETHER_SERVICE_KEY, DATABASE_URL/);
    // A project that does not answer.
    const down = await cli(["refresh"], {
      SUPABASE_URL: "http://127.0.0.1:1",
      TETHER_SERVICE_KEY: "sb_secret_x",
      DATABASE_URL: "postgres://postgres@127.0.0.1:1/postgres",
    });
    assert.equal(down.code, 1);
    assert.match(
      down.stderr,
      /refresh-tokens function at http:\/\/127\.0\.0\.1:1 is not answering/,
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("connect, status, refresh, sync, runs and backfill against a project, in --json and text", async () => {
  await withProjectStack(async ({ env, control }) => {
    const account = await control.account("shopify");
    await control.call("POST", `/data/shopify/${account.external_id}/seed`, {
      orders: 40,
      customers: 20,
      spread_days: 10,
    });

    assert.deepEqual(json(await cli(["status", "--json"], env), "status (empty)"), []);
    const none = ok(await cli(["status"], env), "status (empty, text)");
    assert.match(none.stdout, /no connections yet/);

    // connect: a refusal by the function is exit 1 with its message, nothing stored.
    const refused = await cli(connectArgs(control, account, "CLI Shopify", {}), env);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^tether: connect: .*credentials\.access_token/);

    const connected = json<{ connection_id: string; status: string }>(
      await cli(
        [...connectArgs(control, account, "CLI Shopify", account.credentials), "--json"],
        env,
      ),
      "connect",
    );
    assert.equal(connected.status, "active");
    const id = connected.connection_id;

    const status = json<{ id: string; provider: string; status: string; orders: number }[]>(
      await cli(["status", "--json"], env),
      "status",
    );
    assert.equal(status.length, 1);
    assert.deepEqual([status[0]!.id, status[0]!.provider, status[0]!.status], [
      id,
      "shopify",
      "active",
    ]);

    const refreshed = json<{ refreshed: number }>(
      await cli(["refresh", "--force", "--connection", id, "--json"], env),
      "refresh",
    );
    assert.equal(refreshed.refreshed, 1);

    const synced = json<Record<string, { runs: { status: string; added: number }[] }>>(
      await cli(["sync", "--force", "--json"], env),
      "sync",
    );
    assert.deepEqual(Object.keys(synced), ["orders", "customers"]);
    assert.equal(synced.orders!.runs[0]!.status, "succeeded");
    assert.equal(synced.orders!.runs[0]!.added, 40);
    assert.equal(synced.customers!.runs[0]!.added, 20);
    // Not forced: nothing is due right after a sync.
    const again = json<Record<string, { runs: unknown[] }>>(
      await cli(["sync", "orders", "--provider", "shopify", "--json"], env),
      "sync again",
    );
    assert.deepEqual(Object.keys(again), ["orders"]);
    assert.equal(again.orders!.runs.length, 0);
    const text = ok(await cli(["sync", "orders"], env), "sync (text)");
    assert.match(text.stdout, /nothing was due.*--force/);
    // An unknown connection: the function's 404, exit 1, and a JSON error in --json mode.
    const unknownConn = await cli(
      ["sync", "--connection", crypto.randomUUID(), "--json"],
      env,
    );
    assert.equal(unknownConn.code, 1);
    assert.match(JSON.parse(unknownConn.stdout).error, /no connection/);

    const runs = json<{ kind: string; stream: string | null; status: string }[]>(
      await cli(["runs", "--json", "--limit", "5"], env),
      "runs",
    );
    assert.ok(runs.length >= 3 && runs.length <= 5, `${runs.length} runs`);
    const syncRuns = json<{ kind: string; stream: string; status: string }[]>(
      await cli([
        "runs",
        "--kind",
        "sync",
        "--stream",
        "orders",
        "--status",
        "succeeded",
        "--json",
      ], env),
      "runs filtered",
    );
    assert.equal(syncRuns.length, 1);
    assert.deepEqual([syncRuns[0]!.kind, syncRuns[0]!.stream], ["sync", "orders"]);
    const byConnection = json<unknown[]>(
      await cli(["runs", "--connection", crypto.randomUUID(), "--json"], env),
      "runs of an unknown connection",
    );
    assert.deepEqual(byConnection, []);

    const to = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000);
    const from = new Date(to.getTime() - 3 * 86_400_000);
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    const backfill = json<{ id: string; status: string }>(
      await cli(["backfill", "start", id, "orders", iso(from), iso(to), "--json"], env),
      "backfill start",
    );
    assert.equal(backfill.status, "succeeded");
    const list = json<{ id: string }[]>(await cli(["backfill", "list", "--json"], env), "list");
    assert.deepEqual(list.map((b) => b.id), [backfill.id]);
    const badRange = await cli(
      ["backfill", "start", id, "orders", "2026-01-02", "2026-01-01"],
      env,
    );
    assert.equal(badRange.code, 1);
    assert.match(badRange.stderr, /^tether: backfill: /);

    // schedules against a database without pg_cron: says where they live.
    const noCron = await cli(["schedules", "show"], env);
    assert.equal(noCron.code, 1);
    assert.match(noCron.stderr, /pg_cron is not in this database.*point DATABASE_URL at it/);
  });
});

Deno.test("schedules show, pause and resume the pg_cron jobs of the stack", async () => {
  const stack = await stackEnv();
  const admin = postgres(stack.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    // The file as it is now (it replaces each job by name), not what an older checkout installed.
    await admin.file(join(paths.root, "sql", "schedules.sql"));
  } finally {
    await admin.end();
  }
  type Job = { jobname: string; schedule: string; active: boolean; last_run_at: string | null };
  const env = { TETHER_STATE_DIR: paths.state };
  const shown = json<Job[]>(await cli(["schedules", "--json"], env), "schedules");
  assert.ok(shown.some((j) => j.jobname === "tether-sync-orders" && j.schedule === "* * * * *"));
  assert.ok("last_run_at" in shown[0]!);
  try {
    const paused = json<Job[]>(
      await cli(["schedules", "pause", "cleanup", "--json"], env),
      "pause",
    );
    assert.equal(paused.find((j) => j.jobname === "tether-cleanup")?.active, false);
    assert.equal(paused.find((j) => j.jobname === "tether-sync-orders")?.active, true);
    const text = ok(await cli(["schedules", "show"], env), "show");
    assert.match(text.stdout, /tether-cleanup\s+17 3 \* \* \*\s+PAUSED/);
  } finally {
    const resumed = json<Job[]>(
      await cli(["schedules", "resume", "tether-cleanup", "--json"], env),
      "resume",
    );
    assert.equal(resumed.find((j) => j.jobname === "tether-cleanup")?.active, true);
  }
  const unknown = await cli(["schedules", "pause", "nightly"], env);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no schedule "nightly": one of .*sync-orders/);
});

/** `connect shopify <account> <name>` as a person types it, with the given credentials. */
function connectArgs(
  control: SandboxControl,
  account: SandboxAccount,
  name: string,
  credentials: Record<string, string>,
): string[] {
  return [
    "connect",
    "shopify",
    account.external_id,
    name,
    "--credentials",
    JSON.stringify(credentials),
    "--config",
    JSON.stringify(control.configFor(account)),
  ];
}

interface ProjectStack {
  env: Record<string, string>;
  db: { sql: postgres.Sql; url: string };
  control: SandboxControl;
  functionsUrl: string;
}

/** A test database with its own functions and a sandbox: a "project" the CLI is pointed at. */
async function withProjectStack(fn: (p: ProjectStack) => Promise<void>): Promise<void> {
  await withTestDatabase(async (db) => {
    const sandbox = await startSandbox({ port: 0 });
    const served = await serveFunctionsFor(db);
    try {
      const env = {
        SUPABASE_URL: served.url,
        TETHER_SERVICE_KEY: served.secretKey,
        DATABASE_URL: db.url,
      };
      const control = new SandboxControl(sandbox.url);
      await fn({ env, db, control, functionsUrl: served.functionsUrl });
    } finally {
      await served.stop();
      await sandbox.close();
    }
  });
}

/** withProjectStack with one sandbox Shopify connection, connected through the CLI. */
function withProject(
  fn: (p: {
    env: Record<string, string>;
    db: { sql: postgres.Sql; url: string };
    id: string;
    name: string;
    functionsUrl: string;
  }) => Promise<void>,
): Promise<void> {
  return withProjectStack(async ({ env, db, control, functionsUrl }) => {
    const account = await control.account("shopify");
    const name = "Honest Shop";
    const connected = json<{ connection_id: string }>(
      await cli([...connectArgs(control, account, name, account.credentials), "--json"], env),
      "connect",
    );
    await fn({ env, db, id: connected.connection_id, name, functionsUrl });
  });
}

Deno.test("refresh, sync and status exit 1 naming each connection that failed or needs reauth; sync --force never says to add --force", async () => {
  await withProject(async ({ env, db, id, name }) => {
    // Healthy: exit 0.
    ok(await cli(["refresh", "--force"], env), "refresh (healthy)");
    ok(await cli(["status"], env), "status (healthy)");
    await db.sql`
      update tether.connections
         set status = 'reauth_required', last_error = 'shopify rejected the access token'
       where id = ${id}`;
    const named = new RegExp(
      `1 connection\\(s\\) failed or need reauth:\\n  shopify "${name}" ${id} reauth_required: ` +
        "shopify rejected the access token",
    );
    const refresh = await cli(["refresh", "--force"], env);
    assert.equal(refresh.code, 1, refresh.stdout);
    assert.match(refresh.stderr, named);
    const refreshJson = await cli(["refresh", "--json"], env);
    assert.equal(refreshJson.code, 1);
    assert.equal(typeof JSON.parse(refreshJson.stdout).refreshed, "number", "one JSON document");
    const sync = await cli(["sync", "--force"], env);
    assert.equal(sync.code, 1, sync.stdout);
    assert.doesNotMatch(sync.stdout, /add --force/);
    assert.match(sync.stdout, /nothing was synced: every matching connection was skipped/);
    assert.match(sync.stdout, /reconnect it/);
    assert.match(sync.stderr, named);
    const status = await cli(["status"], env);
    assert.equal(status.code, 1);
    assert.match(status.stdout, /reauth_required/);
    assert.match(status.stderr, named);
  });
});

Deno.test("rotate-key refuses a key ring whose active key the functions do not hold, and re-encrypts nothing", async () => {
  await withProject(async ({ env, db }) => {
    const keyIds = async () =>
      (await db.sql<{ key: string }[]>`
        select split_part(ciphertext, '.', 2) as key from tether.credentials`).map((r) => r.key);
    const before = await keyIds();
    assert.ok(before.length > 0);
    const theirs = (await localSecrets()).tokenEncryptionKeys;
    const foreign = generateKeyRingEntry("k2");
    const refused = await cli(["rotate-key"], {
      ...env,
      TOKEN_ENCRYPTION_KEYS: `${foreign},${theirs}`,
    });
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(
      refused.stderr,
      /refusing to rotate: the functions do not hold key "k2".*they hold k1 \(active\)/,
    );
    assert.match(refused.stderr, /Nothing was re-encrypted/);
    assert.deepEqual(await keyIds(), before);
    // Same id, another key: refused too (the fingerprint differs).
    const sameId = await cli(["rotate-key"], {
      ...env,
      TOKEN_ENCRYPTION_KEYS: generateKeyRingEntry("k1"),
    });
    assert.equal(sameId.code, 1);
    assert.match(sameId.stderr, /the same key "k1" \(same id, another key\)/);
    // The functions' own ring: allowed.
    const allowed = ok(
      await cli(["rotate-key"], { ...env, TOKEN_ENCRYPTION_KEYS: theirs }),
      "rotate",
    );
    assert.match(allowed.stdout, /with key k1/);
  });
});

Deno.test("a command the database refuses prints one line, never a stack trace", async () => {
  await withProject(async ({ env, db }) => {
    await db
      .sql`alter view tether.connection_health rename column last_error to last_error_renamed`;
    const r = await cli(["status"], env);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^tether: column h\.last_error does not exist/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  });
});

Deno.test("webhooks lists recent events with filters, and runs --kind webhook shows the retry sweeps", async () => {
  await withProject(async ({ env, db, id, name, functionsUrl }) => {
    // Three events as the receiver stores them: one processed, one that fails to process (its
    // payload is not a Shopify order), one whose connection was deleted since it arrived.
    await db.sql`
      insert into tether.webhook_events (provider, event_id, connection_id, topic, status,
                                         payload, attempts, last_error, processed_at)
      values ('shopify', 'evt-ok', ${id}, 'orders/updated', 'processed', '{}', 1, null, now()),
             ('shopify', 'evt-bad', ${id}, 'orders/updated', 'failed', '{}', 1, 'earlier', null),
             ('shopify', 'evt-orphan', null, 'orders/updated', 'failed', '{}', 1,
              'the event has no connection', null)`;
    const all = json<{ event_id: string; status: string; name: string | null }[]>(
      await cli(["webhooks", "--json"], env),
      "webhooks",
    );
    assert.deepEqual(all.map((e) => e.event_id).sort(), ["evt-bad", "evt-ok", "evt-orphan"]);
    assert.equal(all.find((e) => e.event_id === "evt-ok")!.name, name);
    assert.ok(all.every((e) => !("payload" in e)), "payloads are never shown");
    const failed = json<{ event_id: string }[]>(
      await cli(["webhooks", "--status", "failed", "--json"], env),
      "webhooks --status failed",
    );
    assert.deepEqual(failed.map((e) => e.event_id).sort(), ["evt-bad", "evt-orphan"]);
    const byConnection = json<{ event_id: string }[]>(
      await cli(["webhooks", "--connection", id, "--topic", "orders/updated", "--json"], env),
      "webhooks --connection",
    );
    assert.deepEqual(byConnection.map((e) => e.event_id).sort(), ["evt-bad", "evt-ok"]);
    const text = ok(await cli(["webhooks", "--since", "60"], env), "webhooks (text)");
    assert.match(text.stdout, /shopify\s+Honest Shop\s+orders\/updated\s+processed/);
    const bad = await cli(["webhooks", "--status", "done"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--status must be one of received, processed, ignored, failed/);

    // A forced sweep through the function is a run of kind webhook; the orphan is ignored for
    // good (its connection is gone), not retried forever.
    const res = await fetch(`${functionsUrl}/webhooks/_sweep`, {
      method: "POST",
      headers: { apikey: env.TETHER_SERVICE_KEY!, "content-type": "application/json" },
      body: JSON.stringify({ force: true }),
    });
    assert.deepEqual(await res.json(), { claimed: 2, processed: 0, ignored: 1, failed: 1 });
    const [orphan] = await db.sql<{ status: string; last_error: string }[]>`
      select status, last_error from tether.webhook_events where event_id = 'evt-orphan'`;
    assert.deepEqual([orphan!.status, orphan!.last_error], [
      "ignored",
      "its connection no longer exists (it was deleted)",
    ]);
    const sweeps = json<{ kind: string; status: string; error: string; name: string | null }[]>(
      await cli(["runs", "--kind", "webhook", "--json"], env),
      "runs --kind webhook",
    );
    assert.equal(sweeps.length, 1);
    assert.equal(sweeps[0]!.status, "failed");
    assert.match(sweeps[0]!.error, /^shopify event evt-bad: /);
    const sweepText = ok(await cli(["runs", "--kind", "webhook"], env), "runs (text)");
    assert.match(sweepText.stdout, /\(retry sweep\)\s+webhook/);
  });
});

Deno.test("an exported DATABASE_URL alone does not break commands; --local and --project choose explicitly", async () => {
  await withProject(async ({ env, id }) => {
    // Only DATABASE_URL (pointing at the project's database): the local stack, said so.
    const partial = await cli(["status", "--json"], { DATABASE_URL: env.DATABASE_URL! });
    assert.notEqual(partial.code, 2, partial.stderr);
    assert.ok(Array.isArray(JSON.parse(partial.stdout)), "a status of the local stack");
    const text = await cli(["status"], { DATABASE_URL: env.DATABASE_URL! });
    assert.match(text.stderr, /^tether: using the local stack \(DATABASE_URL is set, but not/m);
    // All three set: the project; --local overrides it.
    const project = json<{ id: string }[]>(await cli(["status", "--json"], env), "project");
    assert.deepEqual(project.map((r) => r.id), [id]);
    const local = await cli(["status", "--json", "--local"], env);
    assert.ok(!JSON.parse(local.stdout).some((r: { id: string }) => r.id === id), "the stack");
    const both = await cli(["status", "--local", "--project"], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--local and --project exclude each other/);
  });
});

Deno.test("connect names the host it could not reach; connect --sandbox creates a sandbox account and connects it", async () => {
  await withProject(async ({ env }) => {
    const unreachable = await cli([
      "connect",
      "quickbooks",
      "9341",
      "Books",
      "--credentials",
      JSON.stringify({ refresh_token: "r" }),
      "--config",
      JSON.stringify({ realm_id: "9341", auth_base_url: "http://127.0.0.1:9" }),
    ], env);
    assert.equal(unreachable.code, 1);
    assert.match(
      unreachable.stderr,
      /quickbooks token endpoint at 127\.0\.0\.1:9 could not be reached.*nothing was stored/,
    );
    const onProject = await cli(["connect", "--sandbox", "maystro"], env);
    assert.equal(onProject.code, 2);
    assert.match(onProject.stderr, /--sandbox needs the local stack/);
  });
  // On the local stack (its main database): created, connected, active; removed afterwards.
  const made = json<{ connection_id: string; provider: string; external_id: string }>(
    await cli(["connect", "--sandbox", "maystro", "Sandbox probe", "--json"]),
    "connect --sandbox",
  );
  const stack = await stackEnv();
  const admin = postgres(stack.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin<{ status: string; name: string; api: string }[]>`
      select status, name, config->>'api_base_url' as api from tether.connections
       where id = ${made.connection_id}`;
    assert.deepEqual([row?.status, row?.name], ["active", "Sandbox probe"]);
    assert.equal(row!.api, `${stack.SANDBOX_URL}/maystro`);
  } finally {
    await admin`delete from tether.connections where id = ${made.connection_id}`;
    await admin.end();
  }
});

Deno.test("after the sandboxes restart, stack:up removes the connections whose accounts they lost, and only those", async () => {
  await withTestDatabase(async (db) => {
    const sandboxUrl = "http://127.0.0.1:58999";
    await db.sql`
      insert into tether.connections (provider, external_id, name, config)
      values ('maystro', 'a', 'Demo Maystro', ${
      db.sql.json({ api_base_url: `${sandboxUrl}/maystro` })
    }),
             ('shopify', 'b', 'Sandbox shopify b',
              ${db.sql.json({ shop: "b.myshopify.com", auth_base_url: `${sandboxUrl}/shopify` })}),
             ('maystro', 'c', 'Real Maystro', '{}'),
             ('maystro', 'd', 'Other sandbox',
              ${db.sql.json({ api_base_url: "http://127.0.0.1:589990/maystro" })})`;
    const gone = await forgetSandboxConnections(db.sql as never, sandboxUrl);
    assert.deepEqual(gone, ["Demo Maystro", "Sandbox shopify b"]);
    const left = await db.sql<
      { name: string }[]
    >`select name from tether.connections order by name`;
    assert.deepEqual(left.map((r) => r.name), ["Other sandbox", "Real Maystro"]);
  });
});

Deno.test("backfill cancel of a finished job says it had finished; a bad id points at backfill list; status --json has no customer count for Maystro", async () => {
  await withProject(async ({ env, id }) => {
    const to = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000);
    const from = new Date(to.getTime() - 86_400_000);
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    const done = json<{ id: string; status: string }>(
      await cli(["backfill", "start", id, "orders", iso(from), iso(to), "--json"], env),
      "backfill start",
    );
    assert.equal(done.status, "succeeded");
    const cancel = ok(await cli(["backfill", "cancel", done.id], env), "cancel");
    assert.match(cancel.stdout, /had already finished \(succeeded\): nothing to cancel/);
    const badId = await cli(["backfill", "status", "nope"], env);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /list the ids with `npm run tether -- backfill list`/);

    const withDb = postgres(env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    try {
      await withDb`insert into tether.connections (provider, external_id, name)
                   values ('maystro', 'm1', 'Maystro row')`;
    } finally {
      await withDb.end();
    }
    const rows = json<{ provider: string; customers: number | null; orders: number }[]>(
      await cli(["status", "--json"], env),
      "status",
    );
    assert.equal(rows.find((r) => r.provider === "maystro")!.customers, null);
    assert.equal(typeof rows.find((r) => r.provider === "shopify")!.customers, "number");
  });
});

Deno.test("disconnect ends a connection through the disconnect function and says what is left to do at the provider", async () => {
  const bad = await cli(["disconnect", "not-a-uuid"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /the connection must be a uuid/);

  const made = json<{ connection_id: string }>(
    await cli(["connect", "--sandbox", "maystro", "To disconnect", "--json"]),
    "connect --sandbox",
  );
  const human = await cli(["disconnect", made.connection_id]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(
    human.stdout,
    /disconnected: To disconnect \(maystro\) .*maystro cannot be asked to revoke it: .*records were kept/,
  );
  const stack = await stackEnv();
  const admin = postgres(stack.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin<{ status: string; credentials: number }[]>`
      select status, (select count(*)::int from tether.credentials where connection_id = c.id)
               as credentials
        from tether.connections c where id = ${made.connection_id}`;
    assert.deepEqual(row, { status: "disabled", credentials: 0 });
    const gone = json<{ records: string; revocation: string }>(
      await cli(["disconnect", made.connection_id, "--delete-records", "--json"]),
      "disconnect --delete-records",
    );
    assert.deepEqual([gone.revocation, gone.records], ["not_supported", "deleted"]);
    const left = await admin`select 1 from tether.connections where id = ${made.connection_id}`;
    assert.equal(left.length, 0);
  } finally {
    await admin`delete from tether.connections where id = ${made.connection_id}`;
    await admin.end();
  }
});

Deno.test("notifications subscribes (the secret shown once), lists, disables with a reason, enables, delivers and deletes", async () => {
  await withTestDatabase(async (db) => {
    // Only the database is used: no function is called.
    const env = {
      SUPABASE_URL: "http://127.0.0.1:1",
      TETHER_SERVICE_KEY: "unused",
      DATABASE_URL: db.url,
    };
    const empty = ok(await cli(["notifications"], env), "list");
    assert.match(empty.stdout, /No subscribers: npm run tether -- notifications subscribe <url>/);
    const sub = json<{ subscription_id: string; secret: string }>(
      await cli([
        "notifications",
        "subscribe",
        "https://example.test/hooks",
        "--events",
        "run.changes,backfill.ended",
        "--json",
      ], env),
      "subscribe",
    );
    assert.match(sub.secret, /^whsec_/);
    const listed = json<{ subscriptions: Record<string, unknown>[]; deliveries: unknown[] }>(
      await cli(["notifications", "--json"], env),
      "list --json",
    );
    assert.deepEqual(
      listed.subscriptions.map((s) => [s.id, s.url, s.event_types, s.enabled]),
      [[
        sub.subscription_id,
        "https://example.test/hooks",
        ["run.changes", "backfill.ended"],
        true,
      ]],
    );
    assert.ok(!JSON.stringify(listed).includes(sub.secret.slice(6)), "the list never shows it");
    ok(
      await cli(
        ["notifications", "disable", sub.subscription_id, "--reason", "moving servers"],
        env,
      ),
      "disable",
    );
    const text = ok(await cli(["notifications"], env), "list");
    assert.match(text.stdout, /NO: moving servers/);
    ok(await cli(["notifications", "enable", sub.subscription_id], env), "enable");
    const delivered = json<Record<string, number>>(
      await cli(["notifications", "deliver", "--json"], env),
      "deliver",
    );
    assert.equal(delivered.sent, 0);
    ok(await cli(["notifications", "delete", sub.subscription_id], env), "delete");
    const again = await cli(["notifications", "delete", sub.subscription_id], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no subscription/);
    const bad = await cli(["notifications", "subscribe", "ftp://x", "--json"], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /url must be an http\(s\) URL/);
    const usage = await cli(["notifications", "enable"], env);
    assert.equal(usage.code, 2);
  });
});
