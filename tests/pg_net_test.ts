// pg_net and Vault as the local stack runs them behave like Supabase's: same signatures and
// defaults, requests sent only after commit, every outcome recorded in net._http_response, secrets
// encrypted at rest. Against the stand-ins (sql/local/pg_net.sql + scripts/local/net_worker.ts,
// sql/local/supabase_vault.sql) by default, and against the real extensions when the stack runs
// them (TETHER_PGNET=real, README "The real pg_net and Vault"): the same assertions hold for both.
import assert from "node:assert/strict";
import { startNetWorker } from "../scripts/local/net_worker.ts";
import {
  createTestDatabase,
  eventually,
  netWorkerForDatabase,
  stackEnv,
  type TestDatabase,
} from "./helpers/stack.ts";

interface Seen {
  method: string;
  path: string;
  query: [string, string][];
  headers: Record<string, string>;
  body: string;
}

/** A tiny HTTP target that records what it receives; `/slow` answers after 1.5 s. */
function startTarget() {
  const seen: Seen[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname,
      query: [...url.searchParams],
      headers: Object.fromEntries(req.headers),
      body: await req.text(),
    });
    if (url.pathname === "/slow") await new Promise((r) => setTimeout(r, 1500));
    return Response.json({ ok: true, n: seen.length }, {
      status: 201,
      headers: { "x-target": "yes" },
    });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, seen, stop: () => server.shutdown() };
}

interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
}

async function responseFor(db: TestDatabase, id: string): Promise<ResponseRow> {
  return await eventually(`the response to request ${id}`, async () => {
    const [row] = await db.sql<ResponseRow[]>`
      select id::text as id, status_code, content_type, headers, content, timed_out, error_msg
        from net._http_response where id = ${id}`;
    return row;
  });
}

async function count(db: TestDatabase, table: "net.http_request_queue" | "net._http_response") {
  const [row] = await db.sql.unsafe(`select count(*)::int as n from ${table}`);
  return row!.n as number;
}

/** Which pg_net the stack runs: `real` or `standin`. */
const PG_NET = (await stackEnv()).TETHER_PGNET;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A test database with a pg_net worker for it and a target to call. */
async function withNet(
  fn: (ctx: { db: TestDatabase; target: ReturnType<typeof startTarget> }) => Promise<void>,
) {
  const db = await createTestDatabase();
  const target = startTarget();
  const worker = await netWorkerForDatabase(db);
  try {
    await fn({ db, target });
  } finally {
    await worker.stop();
    await target.stop();
    await db.drop();
  }
}

Deno.test("the pg_net and Vault that stack.env names are the ones registered as pg_net and supabase_vault", async () => {
  const { TETHER_PGNET } = await stackEnv();
  const db = await createTestDatabase();
  try {
    const rows = await db.sql<{ extname: string; standin: boolean }[]>`
      select extname, extversion = 'tether_local' as standin from pg_extension
       where extname in ('pg_net', 'supabase_vault', 'tether_standin_pg_net',
                         'tether_standin_supabase_vault')
       order by extname`;
    const standin = TETHER_PGNET === "standin";
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      { extname: "pg_net", standin },
      { extname: "supabase_vault", standin },
    ]);
    // The real ones are preloaded: their settings exist. The stand-ins' do not.
    const [settings] = await db.sql`
      select current_setting('pg_net.database_name', true) is not null as pg_net,
             current_setting('vault.getkey_script', true) is not null as vault`;
    assert.deepEqual({ ...settings }, { pg_net: !standin, vault: !standin });
  } finally {
    await db.drop();
  }
});

Deno.test("net.http_post and net.http_get have pg_net's exact signatures and defaults", async () => {
  const db = await createTestDatabase();
  try {
    const rows = await db.sql<{ name: string; args: string; result: string }[]>`
      select p.proname as name, pg_get_function_arguments(p.oid) as args,
             pg_get_function_result(p.oid) as result
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'net' and p.proname in ('http_post', 'http_get')
       order by p.proname`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      {
        name: "http_get",
        args: "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, " +
          "timeout_milliseconds integer DEFAULT 5000",
        result: "bigint",
      },
      {
        name: "http_post",
        args: "url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, " +
          `headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb, ` +
          "timeout_milliseconds integer DEFAULT 5000",
        result: "bigint",
      },
    ]);
    const columns = await db.sql`
      select column_name, data_type from information_schema.columns
       where table_schema = 'net' and table_name = '_http_response' order by ordinal_position`;
    assert.deepEqual(columns.map((c) => `${c.column_name} ${c.data_type}`), [
      "id bigint",
      "status_code integer",
      "content_type text",
      "headers jsonb",
      "content text",
      "timed_out boolean",
      "error_msg text",
      "created timestamp with time zone",
    ]);
  } finally {
    await db.drop();
  }
});

Deno.test("a committed http_post reaches the target with method, headers, JSON body and params", () =>
  withNet(async ({ db, target }) => {
    const params = { since: "2026-01-01T00:00:00+00:00", q: "a b&c=d", plain: "x" };
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_post(
        url := ${target.url + "/hook"},
        body := ${db.sql.json({ hello: "wörld", n: 1, nested: { ok: true } })},
        params := ${db.sql.json(params)},
        headers := ${db.sql.json({ "Content-Type": "application/json", "X-Test": "t1" })}
      )::text as id`;
    const row = await responseFor(db, id);
    assert.equal(target.seen.length, 1);
    const seen = target.seen[0]!;
    assert.equal(seen.method, "POST");
    assert.equal(seen.path, "/hook");
    assert.deepEqual(Object.fromEntries(seen.query), params);
    assert.equal(seen.headers["content-type"], "application/json");
    assert.equal(seen.headers["x-test"], "t1");
    assert.deepEqual(JSON.parse(seen.body), { hello: "wörld", n: 1, nested: { ok: true } });
    assert.deepEqual(
      { ...row, headers: { "x-target": row.headers?.["x-target"] } },
      {
        id,
        status_code: 201,
        content_type: "application/json",
        headers: { "x-target": "yes" },
        content: '{"ok":true,"n":1}',
        timed_out: false,
        error_msg: null,
      },
    );
    assert.equal(await count(db, "net.http_request_queue"), 0);
  }));

Deno.test("http_post defaults send {} as JSON with Content-Type application/json", () =>
  withNet(async ({ db, target }) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_post(${target.url + "/defaults"})::text as id`;
    const row = await responseFor(db, id);
    assert.equal(row.status_code, 201);
    const seen = target.seen[0]!;
    assert.deepEqual([seen.method, seen.path, seen.query, seen.body], [
      "POST",
      "/defaults",
      [],
      "{}",
    ]);
    assert.equal(seen.headers["content-type"], "application/json");
    const [queued] = await db.sql`
      select timeout_milliseconds from net.http_request_queue limit 1`;
    assert.equal(queued, undefined);
  }));

Deno.test("a request from a rolled-back transaction is never sent", () =>
  withNet(async ({ db, target }) => {
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx`select net.http_post(${target.url + "/rolled-back"})`;
        throw new Error("roll back");
      }),
      /roll back/,
    );
    await sleep(1000);
    assert.equal(target.seen.length, 0);
    assert.equal(await count(db, "net.http_request_queue"), 0);
    assert.equal(await count(db, "net._http_response"), 0);
  }));

Deno.test("a request in an open transaction is sent only after commit", () =>
  withNet(async ({ db, target }) => {
    let id = "";
    await db.sql.begin(async (tx) => {
      const [row] = await tx<[{ id: string }]>`
        select net.http_post(${target.url + "/after-commit"})::text as id`;
      id = row.id;
      await sleep(800);
      assert.equal(target.seen.length, 0, "sent before commit");
    });
    const row = await responseFor(db, id);
    assert.equal(row.status_code, 201);
    assert.deepEqual(target.seen.map((s) => s.path), ["/after-commit"]);
  }));

Deno.test("a request past timeout_milliseconds is recorded as timed out", () =>
  withNet(async ({ db, target }) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_post(${target.url + "/slow"}, timeout_milliseconds := 300)::text as id`;
    const row = await responseFor(db, id);
    assert.equal(target.seen.length, 1);
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, true);
    assert.equal(row.content, null);
    assert.match(row.error_msg ?? "", /timeout/i);
    assert.match(row.error_msg ?? "", /300 ms/);
  }));

Deno.test("a refused connection is recorded with no status and an error message", () =>
  withNet(async ({ db }) => {
    const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_post(${`http://127.0.0.1:${port}/nobody`})::text as id`;
    const row = await responseFor(db, id);
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, false);
    assert.equal(row.content, null);
    assert.match(row.error_msg ?? "", /connect/i);
  }));

Deno.test("net.http_get sends a GET with its params and headers and no body", () =>
  withNet(async ({ db, target }) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_get(${target.url + "/items?fixed=1"},
                          params := '{"page": "2", "filter": "status:open"}',
                          headers := '{"X-Get": "g"}')::text as id`;
    const row = await responseFor(db, id);
    assert.equal(row.status_code, 201);
    const seen = target.seen[0]!;
    assert.equal(seen.method, "GET");
    assert.equal(seen.path, "/items");
    assert.deepEqual(Object.fromEntries(seen.query), {
      fixed: "1",
      page: "2",
      filter: "status:open",
    });
    assert.equal(seen.headers["x-get"], "g");
    assert.equal(seen.body, "");
  }));

// The batch semantics of the real worker (supabase/pg_net v0.20.4 src/worker.c: one transaction
// per batch of pg_net.batch_size requests, sent together, committed when the last one ends; then a
// pause of up to a second). Measured against the real extension: a fast POST queued 0.5 s into a
// 5 s call reached its target 4.5 s later, and a fast response in a slow batch became visible only
// when the slow one ended.

Deno.test("like pg_net, a request queued while a batch is in flight waits for the whole batch", () =>
  withNet(async ({ db, target }) => {
    const [{ slow }] = await db.sql<[{ slow: string }]>`
      select net.http_post(${target.url + "/slow"})::text as slow`;
    await eventually(
      "the slow call to start",
      () => Promise.resolve(target.seen.length === 1 || undefined),
    );
    const [{ fast }] = await db.sql<[{ fast: string }]>`
      select net.http_post(${target.url + "/fast"})::text as fast`;
    await sleep(700);
    assert.deepEqual(target.seen.map((s) => s.path), ["/slow"], "sent before the batch ended");
    await responseFor(db, slow);
    await responseFor(db, fast);
    assert.deepEqual(target.seen.map((s) => s.path), ["/slow", "/fast"]);
  }));

Deno.test("like pg_net, the responses of one batch become visible together", () =>
  withNet(async ({ db, target }) => {
    const [{ slow, fast }] = await db.sql<[{ slow: string; fast: string }]>`
      select net.http_post(${target.url + "/slow"})::text as slow,
             net.http_post(${target.url + "/fast"})::text as fast`;
    await eventually(
      "both calls to reach the target",
      () => Promise.resolve(target.seen.length === 2 || undefined),
    );
    await sleep(500);
    assert.equal(await count(db, "net._http_response"), 0, "the fast answer waits for the batch");
    await responseFor(db, slow);
    assert.equal((await responseFor(db, fast)).status_code, 201);
  }));

// What "the worker dies mid-batch" means differs. The stand-in's worker is a process of its own
// that can die (its connections cut); the real worker lives in the server: pg_terminate_backend
// asks it to restart, and it finishes its batch first (supabase/pg_net src/worker.c:
// handle_sigterm sets got_restart, checked between batches).

/** The stand-in: a worker that dies mid-batch leaves its requests queued, and the next sends them. */
async function standinWorkerDies(): Promise<void> {
  const db = await createTestDatabase();
  const target = startTarget();
  try {
    const first = await startNetWorker({ databaseUrl: db.url, pollMs: 100 });
    const [{ id }] = await db.sql<[{ id: string }]>`
        select net.http_post(${target.url + "/slow"})::text as id`;
    await eventually(
      "the call to start",
      () => Promise.resolve(target.seen.length === 1 || undefined),
    );
    // Cut the worker's connections mid-batch, as a crash would.
    await db.sql`select pg_terminate_backend(pid) from pg_stat_activity
                    where datname = ${db.name} and pid <> pg_backend_pid()`;
    await first.stop().catch(() => {});
    assert.equal(
      await count(db, "net.http_request_queue"),
      1,
      "the request is back in the queue",
    );
    const second = await startNetWorker({ databaseUrl: db.url, pollMs: 100 });
    try {
      assert.equal((await responseFor(db, id)).status_code, 201);
      assert.equal(target.seen.length, 2, "sent again: at least once, as pg_net");
    } finally {
      await second.stop();
    }
  } finally {
    await target.stop();
    await db.drop();
  }
}

/** The real pg_net: a worker terminated mid-batch finishes the batch, then restarts. */
function realWorkerDies(): Promise<void> {
  return withNet(async ({ db, target }) => {
    const [{ id }] = await db.sql<[{ id: string }]>`
        select net.http_post(${target.url + "/slow"})::text as id`;
    await eventually(
      "the call to start",
      () => Promise.resolve(target.seen.length === 1 || undefined),
    );
    const [{ before }] = await db.sql<[{ before: number }]>`
        select pid as before from pg_stat_activity where backend_type ilike 'pg_net%worker'`;
    await db.sql`select pg_terminate_backend(${before})`;
    assert.equal((await responseFor(db, id)).status_code, 201);
    const after = await eventually("the worker to be back", async () => {
      const [row] = await db.sql<{ pid: number }[]>`
          select pid from pg_stat_activity
           where backend_type ilike 'pg_net%worker' and datname = ${db.name}`;
      return row?.pid;
    });
    assert.notEqual(after, before, "a new worker");
    assert.equal(target.seen.length, 1, "sent once");
    assert.equal(await count(db, "net.http_request_queue"), 0);
  });
}

// One test, for whichever pg_net the stack runs: each kind's own behaviour, never a skipped test.
Deno.test(
  `a pg_net worker that dies mid-batch (${PG_NET}): ${
    PG_NET === "real"
      ? "the real worker finishes the batch, then restarts"
      : "the stand-in's requests stay queued, and the next worker sends them"
  }`,
  PG_NET === "real" ? realWorkerDies : standinWorkerDies,
);

Deno.test("like pg_net, responses older than the ttl are deleted when the worker is awake", () =>
  withNet(async ({ db, target }) => {
    await db.sql`insert into net._http_response (id, status_code, created)
                 values (-1, 200, now() - interval '7 hours'), (-2, 200, now() - interval '5 hours')`;
    const [{ id }] = await db.sql<[{ id: string }]>`
      select net.http_get(${target.url + "/wake"})::text as id`;
    await responseFor(db, id);
    const left = await db.sql<{ id: string }[]>`
      select id::text from net._http_response where id < 0 order by id`;
    assert.deepEqual(left.map((r) => r.id), ["-2"]);
  }));

Deno.test("Vault stores secrets encrypted and decrypts them by name", async () => {
  const db = await createTestDatabase();
  const plaintext = `plain-${crypto.randomUUID()}`;
  try {
    const [{ id }] = await db.sql<[{ id: string }]>`
      select vault.create_secret(${plaintext}, 'test_secret', 'for the test') as id`;
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const decrypted = await db.sql`
      select id, name, description, decrypted_secret = ${plaintext} as matches
        from vault.decrypted_secrets where name = 'test_secret'`;
    assert.deepEqual(decrypted.map((r) => ({ ...r })), [
      { id, name: "test_secret", description: "for the test", matches: true },
    ]);
    const [stored] = await db.sql`
      select position(${plaintext} in secret) as at, secret = ${plaintext} as same,
             position(convert_to(${plaintext}, 'UTF8') in decode(secret, 'base64')) as raw_at
        from vault.secrets where id = ${id}`;
    assert.deepEqual({ ...stored }, { at: 0, same: false, raw_at: 0 });
    const dup = await db.sql`select vault.create_secret('other', 'test_secret')`.catch((e) => e);
    assert.equal((dup as { code?: string }).code, "23505", "names are unique");
  } finally {
    await db.drop();
  }
});
