// Grants and row-level security of schema `tether`, proven the way PostgREST
// uses them: inside a transaction, `set local role <role>` and the request's
// JWT claims in `request.jwt.claims`. Rows are inserted as the superuser.
import assert from "node:assert/strict";
import postgres from "postgres";
import type { Sql, Tx } from "../functions-shared/db/client.ts";
import { withTestDatabase } from "./helpers/stack.ts";

const USER_A = "0a0a0a0a-0000-4000-8000-00000000000a";
const USER_B = "0b0b0b0b-0000-4000-8000-00000000000b";
const TABLES = [
  "backfills",
  "connections",
  "credentials",
  "customers",
  "orders",
  "runs",
  "sync_cursors",
  "webhook_events",
];
const SQL_API = [
  "public.refresh_tokens(text)",
  "public.refresh_shiphero_tokens()",
  "public.refresh_shopify_tokens()",
  "public.refresh_lightspeed_tokens()",
  "public.refresh_quickbooks_tokens()",
  "public.refresh_maystro_tokens()",
  "tether.invoke_function(text,jsonb)",
  "public.link_connections(uuid,uuid,text,text)",
  "public.unlink_connections(uuid,uuid)",
];

type Role = "anon" | "authenticated" | "service_role";

/** Runs `fn` as PostgREST would for a request by `role` with claims `{sub, role}` (none if sub is null). */
async function as<T>(
  sql: Sql,
  role: Role,
  sub: string | null,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${role}`);
    if (sub !== null) {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub, role })}, true)`;
    }
    return await fn(tx);
  }) as T;
}

/** The PostgreSQL error `run` fails with; fails the test if it succeeds. */
async function pgError(run: () => Promise<unknown>): Promise<postgres.PostgresError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof postgres.PostgresError) return err;
    throw err;
  }
  assert.fail("expected a PostgreSQL error, but the statement succeeded");
}

async function deniedAs(sql: Sql, role: Role, sub: string | null, query: string) {
  const err = await pgError(() => as(sql, role, sub, (tx) => tx.unsafe(query)));
  assert.equal(err.code, "42501", `${role}: ${query} → ${err.message}`);
  return err;
}

interface Fixture {
  a: string;
  b: string;
}

/** Two connections owned by different users, each with a run, a cursor, an order, a customer and a backfill. */
async function seed(sql: Sql): Promise<Fixture> {
  const ids: string[] = [];
  for (
    const [owner, provider, name] of [
      [USER_A, "shopify", "A shop"],
      [USER_B, "shiphero", "B warehouse"],
    ] as const
  ) {
    const [row] = await sql<{ id: string }[]>`
      insert into tether.connections (provider, external_id, name, owner_id, config)
      values (${provider}, ${name + "-ext"}, ${name}, ${owner},
              ${sql.json({ api_base_url: `https://${provider}.internal.example` })})
      returning id`;
    const id = row!.id;
    ids.push(id);
    await sql`insert into tether.runs (connection_id, kind, status) values (${id}, 'refresh', 'succeeded')`;
    await sql`insert into tether.sync_cursors (connection_id, stream, cursor, last_synced_at)
              values (${id}, 'orders', 'c1', '2026-01-02T03:04:05Z')`;
    await sql`insert into tether.orders (connection_id, external_id, raw)
              values (${id}, ${"order-" + name}, '{}')`;
    await sql`insert into tether.customers (connection_id, external_id, raw)
              values (${id}, ${"customer-" + name}, '{}')`;
    await sql`insert into tether.backfills (connection_id, stream, range_start, range_end)
              values (${id}, 'orders', '2026-01-01', '2026-01-03')`;
    await sql`insert into tether.credentials (connection_id, field, ciphertext)
              values (${id}, 'access_token', 'v1.k1.aaaa.bbbb')`;
  }
  return { a: ids[0]!, b: ids[1]! };
}

Deno.test("an authenticated user sees only their own connection, its health and what hangs off it", () =>
  withTestDatabase(async (db) => {
    const { a, b } = await seed(db.sql);
    for (const [user, own] of [[USER_A, a], [USER_B, b]] as const) {
      await as(db.sql, "authenticated", user, async (tx) => {
        const connections = await tx`select id, owner_id, name, status from tether.connections`;
        assert.deepEqual(connections.map((r) => ({ ...r })), [{
          id: own,
          owner_id: user,
          name: user === USER_A ? "A shop" : "B warehouse",
          status: "active",
        }]);
        const health = await tx`
          select id, owner_id, orders_last_synced_at, backfill_status, backfill_percent::text as pct
            from tether.connection_health`;
        assert.deepEqual(health.map((r) => ({ ...r })), [{
          id: own,
          owner_id: user,
          orders_last_synced_at: new Date("2026-01-02T03:04:05Z"),
          backfill_status: "pending",
          pct: "0.0",
        }]);
        for (const table of ["runs", "sync_cursors", "orders", "customers", "backfills"]) {
          const rows = await tx.unsafe(`select connection_id from tether.${table}`);
          assert.deepEqual(rows.map((r) => r.connection_id), [own], `tether.${table}`);
        }
        // Asking for the other user's rows by id finds nothing either.
        const other = own === a ? b : a;
        const [probe] = await tx`
          select (select count(*) from tether.connections where id = ${other})::int as connections,
                 (select count(*) from tether.runs where connection_id = ${other})::int as runs,
                 (select count(*) from tether.connection_health where id = ${other})::int as health`;
        assert.deepEqual({ ...probe }, { connections: 0, runs: 0, health: 0 });
      });
    }
    // A session with the authenticated role but no claims owns nothing.
    await as(db.sql, "authenticated", null, async (tx) => {
      const [row] = await tx`
        select (select count(*) from tether.connections)::int as connections,
               (select count(*) from tether.connection_health)::int as health,
               (select count(*) from tether.orders)::int as orders`;
      assert.deepEqual({ ...row }, { connections: 0, health: 0, orders: 0 });
    });
    // The superuser sees both, so the filtering above is RLS and not missing data.
    const [all] = await db.sql`select count(*)::int as n from tether.connection_health`;
    assert.equal(all!.n, 2);
  }));

const DATA_API_VIEWS = [
  "tether_backfill_records",
  "tether_backfills",
  "tether_connection_health",
  "tether_connections",
  "tether_customers",
  "tether_order_status",
  "tether_orders",
  "tether_runs",
  "tether_sync_cursors",
];

Deno.test("the Data API: in public (exposed by default), a signed-in user reads only their own rows; anon nothing", () =>
  withTestDatabase(async (db) => {
    // PostgREST serves only exposed schemas, `public` unless the project changes it; before #13
    // nothing of Tether's was there, so the README's promise could not hold on a real project.
    const views = await db.sql<{ relname: string; options: string[] | null }[]>`
      select c.relname, c.reloptions as options from pg_class c
       where c.relnamespace = 'public'::regnamespace and c.relname like 'tether\_%' and c.relkind = 'v'
       order by c.relname`;
    assert.deepEqual(views.map((v) => v.relname), DATA_API_VIEWS);
    for (const view of views) {
      assert.ok(
        view.options?.includes("security_invoker=true"),
        `${view.relname} runs as the caller`,
      );
    }
    const { a, b } = await seed(db.sql);
    for (const [user, own] of [[USER_A, a], [USER_B, b]] as const) {
      await as(db.sql, "authenticated", user, async (tx) => {
        const connections = await tx`select id, owner_id, status from public.tether_connections`;
        assert.deepEqual(connections.map((r) => ({ ...r })), [
          { id: own, owner_id: user, status: "active" },
        ]);
        // tether_order_status has store orders only: its RLS is tested in order_links_test.ts.
        const perConnection = DATA_API_VIEWS.filter((v) =>
          v !== "tether_backfill_records" && v !== "tether_order_status"
        );
        for (const view of perConnection) {
          const column = view === "tether_connections" || view === "tether_connection_health"
            ? "id"
            : "connection_id";
          const rows = await tx.unsafe(`select ${column} as c from public.${view}`);
          assert.deepEqual(rows.map((r) => r.c), [own], view);
        }
      });
      // The view shows status columns only: config and leases stay out of reach.
      const err = await pgError(() =>
        as(db.sql, "authenticated", user, (tx) => tx`select config from public.tether_connections`)
      );
      assert.equal(err.code, "42703");
      // Writing through a view is refused (no grant), whatever the row.
      await deniedAs(
        db.sql,
        "authenticated",
        user,
        `update public.tether_connections set name = 'x' where id = '${own}'`,
      );
    }
    for (const view of DATA_API_VIEWS) {
      await deniedAs(db.sql, "anon", null, `select * from public.${view}`);
    }
  }));

Deno.test("auth.uid() returns the claim's sub, and null without claims", () =>
  withTestDatabase(async (db) => {
    const withClaims = await as(
      db.sql,
      "authenticated",
      USER_A,
      (tx) => tx`select auth.uid()::text as uid, auth.role() as role`,
    );
    assert.deepEqual({ ...withClaims[0] }, { uid: USER_A, role: "authenticated" });
    const without = await as(
      db.sql,
      "authenticated",
      null,
      (tx) => tx`select auth.uid() as uid, auth.jwt() as jwt`,
    );
    assert.deepEqual({ ...without[0] }, { uid: null, jwt: null });
  }));

Deno.test("credentials are denied to authenticated and service_role, webhook events to authenticated", () =>
  withTestDatabase(async (db) => {
    await seed(db.sql);
    const err = await deniedAs(db.sql, "authenticated", USER_A, "select * from tether.credentials");
    assert.equal(err.message, "permission denied for table credentials");
    await deniedAs(db.sql, "authenticated", USER_A, "select ciphertext from tether.credentials");
    await deniedAs(db.sql, "service_role", null, "select * from tether.credentials");
    await deniedAs(db.sql, "service_role", null, "select ciphertext from tether.credentials");
    await deniedAs(db.sql, "authenticated", USER_A, "select * from tether.webhook_events");
    for (const role of ["anon", "authenticated", "service_role"] as const) {
      const [row] = await db.sql`
        select has_table_privilege(${role}, 'tether.credentials', 'select') as s,
               has_table_privilege(${role}, 'tether.credentials', 'insert') as i,
               has_table_privilege(${role}, 'tether.credentials', 'update') as u,
               has_any_column_privilege(${role}, 'tether.credentials', 'select') as c`;
      assert.deepEqual({ ...row }, { s: false, i: false, u: false, c: false }, role);
    }
    // The service role still reads the status of every connection (it bypasses RLS).
    const rows = await as(
      db.sql,
      "service_role",
      null,
      (tx) => tx`select count(*)::int as n from tether.connections`,
    );
    assert.equal(rows[0]!.n, 2);
  }));

Deno.test("anon cannot use schema tether at all", () =>
  withTestDatabase(async (db) => {
    await seed(db.sql);
    const [usage] = await db.sql`
      select has_schema_privilege('anon', 'tether', 'usage') as anon,
             has_schema_privilege('public', 'tether', 'usage') as public,
             has_schema_privilege('authenticated', 'tether', 'usage') as authenticated`;
    assert.deepEqual({ ...usage }, { anon: false, public: false, authenticated: true });
    for (const relation of [...TABLES, "connection_health"]) {
      const err = await deniedAs(db.sql, "anon", null, `select 1 from tether.${relation}`);
      assert.equal(err.message, "permission denied for schema tether");
    }
    const err = await deniedAs(db.sql, "anon", USER_A, "select tether.owns_connection(null)");
    assert.equal(err.message, "permission denied for schema tether");
  }));

Deno.test("authenticated cannot read connections.config nor insert, update or delete anything", () =>
  withTestDatabase(async (db) => {
    const { a } = await seed(db.sql);
    for (const column of ["config", "lease_owner", "lease_expires_at"]) {
      const err = await deniedAs(
        db.sql,
        "authenticated",
        USER_A,
        `select ${column} from tether.connections`,
      );
      assert.equal(err.message, "permission denied for table connections");
    }
    await deniedAs(db.sql, "authenticated", USER_A, "select * from tether.connections");
    const writes = [
      `insert into tether.connections (provider, external_id, name, owner_id)
         values ('shopify', 'mine', 'mine', '${USER_A}')`,
      `update tether.connections set name = 'renamed' where id = '${a}'`,
      `update tether.connections set status = 'disabled'`,
      `delete from tether.connections where id = '${a}'`,
      `insert into tether.runs (connection_id, kind) values ('${a}', 'refresh')`,
      `update tether.runs set status = 'failed'`,
      `delete from tether.sync_cursors`,
      `update tether.orders set total_price = 0`,
      `insert into tether.customers (connection_id, external_id, raw) values ('${a}', 'x', '{}')`,
      `delete from tether.backfills`,
      `insert into tether.credentials (connection_id, field, ciphertext)
         values ('${a}', 'refresh_token', 'v1.k1.aaaa.bbbb')`,
    ];
    for (const write of writes) await deniedAs(db.sql, "authenticated", USER_A, write);
    const [privileges] = await db.sql`
      select count(*) filter (where has_table_privilege('authenticated', c.oid, 'insert')
                                 or has_table_privilege('authenticated', c.oid, 'update')
                                 or has_table_privilege('authenticated', c.oid, 'delete')
                                 or has_table_privilege('authenticated', c.oid, 'truncate'))::int
               as writable,
             count(*)::int as relations
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'tether' and c.relkind in ('r', 'v', 'p')`;
    assert.equal(privileges!.writable, 0);
    // Nothing changed.
    const [row] = await db.sql`
      select name, status, (select count(*) from tether.runs)::int as runs
        from tether.connections where id = ${a}`;
    assert.deepEqual({ ...row }, { name: "A shop", status: "active", runs: 2 });
  }));

Deno.test("Vault is out of reach of anon and authenticated; pg_net is not, as on Supabase", () =>
  withTestDatabase(async (db) => {
    for (const role of ["anon", "authenticated"] as const) {
      for (
        const query of [
          "select * from vault.decrypted_secrets",
          "select * from vault.secrets",
          "select vault.create_secret('x', 'y')",
        ]
      ) {
        await deniedAs(db.sql, role, USER_A, query);
      }
      // The real extension grants its schema and tables to PUBLIC (supabase/pg_net sql/pg_net.sql),
      // so the stand-in does too: a test must not promise what production does not do.
      await as(db.sql, role, USER_A, async (tx) => {
        await tx`select count(*) from net._http_response`;
        await tx`select count(*) from net.http_request_queue`;
      });
    }
  }));

Deno.test("every table and view in schema tether has a comment; tables have RLS, views run as the caller", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<
      { relname: string; relkind: string; commented: boolean; rls: boolean; options: string[] }[]
    >`
      select c.relname, c.relkind::text as relkind,
             exists (select 1 from pg_description d
                      where d.objoid = c.oid and d.classoid = 'pg_class'::regclass
                        and d.objsubid = 0) as commented,
             c.relrowsecurity as rls, coalesce(c.reloptions, '{}') as options
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'tether' and c.relkind in ('r', 'p', 'v', 'm', 'f')
       order by c.relname`;
    const names = rows.map((r) => r.relname);
    for (const known of [...TABLES, "connection_health"]) {
      assert.ok(names.includes(known), `tether.${known} exists`);
    }
    assert.deepEqual(rows.filter((r) => !r.commented).map((r) => r.relname), [], "uncommented");
    const tables = rows.filter((r) => r.relkind === "r" || r.relkind === "p");
    assert.deepEqual(tables.filter((r) => !r.rls).map((r) => r.relname), [], "tables without RLS");
    // PostgreSQL has no RLS on views; a view honours its tables' RLS only with security_invoker.
    const views = rows.filter((r) => r.relkind === "v");
    assert.deepEqual(
      views.filter((r) => !r.options.includes("security_invoker=true")).map((r) => r.relname),
      [],
      "views without security_invoker",
    );
    assert.deepEqual(rows.filter((r) => r.relkind === "m" || r.relkind === "f"), []);
  }));

Deno.test("statuses are checked by named constraints", () =>
  withTestDatabase(async (db) => {
    const { a } = await seed(db.sql);
    const err = await pgError(() =>
      db.sql`insert into tether.connections (provider, external_id, name, status)
             values ('shopify', 'bogus-shop', 'bogus', 'bogus')`
    );
    assert.equal(err.code, "23514");
    assert.equal(err.constraint_name, "status_is_valid");
    assert.equal(err.table_name, "connections");
    for (
      const [table, statement] of [
        [
          "runs",
          `insert into tether.runs (connection_id, kind, status) values ('${a}', 'sync', 'bogus')`,
        ],
        ["backfills", `update tether.backfills set status = 'bogus' where connection_id = '${a}'`],
        ["customers", `update tether.customers set status = 'bogus' where connection_id = '${a}'`],
        [
          "webhook_events",
          `insert into tether.webhook_events (provider, event_id, status) values ('shopify', 'e1', 'bogus')`,
        ],
      ] as const
    ) {
      const e = await pgError(() => db.sql.unsafe(statement));
      assert.deepEqual([e.code, e.constraint_name, e.table_name], [
        "23514",
        "status_is_valid",
        table,
      ]);
    }
    const provider = await pgError(() =>
      db.sql`insert into tether.connections (provider, external_id, name)
             values ('myspace', 'x', 'x')`
    );
    assert.equal(provider.constraint_name, "provider_is_known");
  }));

Deno.test("the SQL API is not executable by public, anon or authenticated", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<{ fn: string; role: string; allowed: boolean }[]>`
      select f.fn, r.role, has_function_privilege(r.role, f.fn, 'execute') as allowed
        from unnest(${SQL_API}::text[]) as f(fn)
        cross join unnest(array['public', 'anon', 'authenticated']) as r(role)
       order by 1, 2`;
    assert.equal(rows.length, SQL_API.length * 3);
    assert.deepEqual(rows.filter((r) => r.allowed).map((r) => `${r.role} → ${r.fn}`), []);
    // And calling it as a signed-in user is refused before it reaches Vault.
    const err = await deniedAs(db.sql, "authenticated", USER_A, "select public.refresh_tokens()");
    assert.equal(err.message, "permission denied for function refresh_tokens");
    await deniedAs(db.sql, "authenticated", USER_A, "select public.refresh_shopify_tokens()");
  }));

Deno.test("refresh_tokens('nope') raises an error naming the provider", () =>
  withTestDatabase(async (db) => {
    const err = await pgError(() => db.sql`select public.refresh_tokens('nope')`);
    assert.equal(err.code, "P0001");
    assert.equal(err.message, 'unknown provider "nope"');
    assert.equal(
      err.hint,
      "one of shiphero, shopify, lightspeed, quickbooks, maystro, or null for all",
    );
    const [queued] = await db.sql`select count(*)::int as n from net.http_request_queue`;
    assert.equal(queued!.n, 0);
  }));
