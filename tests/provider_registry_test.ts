// SQL and the registry agree (issue #11). SQL keeps its provider and stream lists in one place,
// tether.providers(); these tests read the migrated database and fail when that list, the
// constraints that use it or the SQL API's per-provider and per-stream functions differ from
// functions-shared/providers/registry.ts in either direction.
import assert from "node:assert/strict";
import postgres from "postgres";
import { adapters, OAUTH_PROVIDERS, PROVIDERS } from "../functions-shared/providers/registry.ts";
import { STREAMS } from "../functions-shared/providers/types.ts";
import { withTestDatabase } from "./helpers/stack.ts";

const sorted = (names: Iterable<string>) => [...names].sort();

/** The names `pattern`'s first group captures in `names`, sorted. */
function captured(names: readonly string[], pattern: RegExp): string[] {
  return sorted(names.flatMap((n) => n.match(pattern)?.[1] ?? []));
}

async function violation(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (err) {
    if (err instanceof postgres.PostgresError && err.code === "23514") return err.constraint_name;
    throw err;
  }
  return undefined;
}

Deno.test("tether.providers() lists exactly the registry's providers, their streams and which use OAuth", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<{ provider: string; streams: string[]; oauth: boolean }[]>`
      select provider, streams, oauth from tether.providers() order by provider`;
    assert.deepEqual(
      rows.map((r) => ({ ...r, streams: sorted(r.streams) })),
      [...PROVIDERS].sort().map((provider) => ({
        provider,
        streams: sorted(Object.keys(adapters[provider].streams)),
        oauth: (OAUTH_PROVIDERS as readonly string[]).includes(provider),
      })),
    );
    // Every stream name the code knows is some provider's, and no other.
    assert.deepEqual(sorted(new Set(rows.flatMap((r) => r.streams))), sorted(STREAMS));
  }));

Deno.test("every provider and stream check constraint asks tether.providers(), not a list of its own", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<{ name: string; def: string }[]>`
      select t.relname || '.' || a.attname || ' ' || c.conname as name,
             pg_get_constraintdef(c.oid) as def
        from pg_attribute a
        join pg_class t on t.oid = a.attrelid and t.relkind = 'r'
        left join pg_constraint c
          on c.conrelid = t.oid and c.contype = 'c' and a.attnum = any(c.conkey)
       where t.relnamespace = 'tether'::regnamespace
         and a.attname in ('provider', 'stream') and not a.attisdropped
         -- The change feed's stream is written by its triggers only, each naming its table's
         -- stream; a per-row check would triple the upserts' cost (see its migration).
         and t.relname not in ('changes', 'change_leases')
       order by 1`;
    assert.deepEqual(rows.map((r) => `${r.name}: ${r.def}`), [
      "backfill_records.stream stream_is_valid: CHECK (tether.is_known_stream(stream))",
      "backfills.stream stream_is_valid: CHECK (tether.is_known_stream(stream))",
      "connections.provider provider_is_known: CHECK (tether.is_known_provider(provider))",
      "oauth_states.provider oauth_states_provider_is_valid: CHECK (tether.is_oauth_provider(provider))",
      "runs.stream stream_is_valid: CHECK (((stream IS NULL) OR tether.is_known_stream(stream)))",
      "sync_cursors.stream stream_is_valid: CHECK (tether.is_known_stream(stream))",
      "webhook_events.provider provider_is_known: CHECK (tether.is_known_provider(provider))",
    ]);
    // Nothing else in SQL spells out a provider: only the catalogs (the providers; which of them
    // hold a shop's orders and which fulfil them) and each provider's own wrapper.
    const spelled = await db.sql<{ fn: string }[]>`
      select p.oid::regprocedure::text as fn from pg_proc p
       where p.pronamespace in ('tether'::regnamespace, 'public'::regnamespace)
         and p.prosrc ~ ${`'(${PROVIDERS.join("|")})'`}
       order by 1`;
    assert.deepEqual(
      spelled.map((r) => r.fn),
      sorted([
        "tether.providers()",
        "tether.order_link_roles()",
        ...PROVIDERS.map((p) => `refresh_${p}_tokens()`),
      ]),
    );
  }));

Deno.test("the constraints accept every registry name and refuse any other", () =>
  withTestDatabase(async (db) => {
    const { sql } = db;
    for (const provider of PROVIDERS) {
      const [conn] = await sql<{ id: string }[]>`
        insert into tether.connections (provider, external_id, name)
        values (${provider}, 'x', 'x') returning id`;
      await sql`insert into tether.webhook_events (provider, event_id) values (${provider}, 'e')`;
      for (const stream of Object.keys(adapters[provider].streams)) {
        await sql`insert into tether.sync_cursors (connection_id, stream)
                  values (${conn!.id}, ${stream})`;
      }
      const oauth = (OAUTH_PROVIDERS as readonly string[]).includes(provider);
      const spent = await violation(() =>
        sql`insert into tether.oauth_states (nonce, provider, expires_at)
            values (${`nonce-of-${provider}-0123456789`}, ${provider}, now())`
      );
      assert.equal(spent, oauth ? undefined : "oauth_states_provider_is_valid", provider);
    }
    assert.equal(
      await violation(() =>
        sql`insert into tether.connections (provider, external_id, name) values ('myspace', 'x', 'x')`
      ),
      "provider_is_known",
    );
    assert.equal(
      await violation(() =>
        sql`insert into tether.webhook_events (provider, event_id) values ('myspace', 'e')`
      ),
      "provider_is_known",
    );
    assert.equal(
      await violation(() =>
        sql`insert into tether.sync_cursors (connection_id, stream)
            select id, 'products' from tether.connections limit 1`
      ),
      "stream_is_valid",
    );
    assert.equal(
      await violation(() =>
        sql`insert into tether.runs (kind, stream) values ('sync', 'products')`
      ),
      "stream_is_valid",
    );
  }));

Deno.test("the SQL API has a refresh_<provider>_tokens() per registry provider, calling refresh_tokens for it", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<{ name: string; src: string }[]>`
      select proname as name, prosrc as src from pg_proc
       where pronamespace = 'public'::regnamespace and proname ~ '^refresh_.+_tokens$'`;
    assert.deepEqual(captured(rows.map((r) => r.name), /^refresh_(.+)_tokens$/), sorted(PROVIDERS));
    for (const { name, src } of rows) {
      const provider = name.match(/^refresh_(.+)_tokens$/)![1];
      assert.equal(src.trim(), `select public.refresh_tokens('${provider}')`, name);
    }
    // check_provider() names the same providers when it refuses one.
    try {
      await db.sql`select tether.check_provider('myspace')`;
      assert.fail("check_provider accepted an unknown provider");
    } catch (err) {
      assert.ok(err instanceof postgres.PostgresError, String(err));
      assert.equal(err.hint, `one of ${PROVIDERS.join(", ")}, or null for all`);
    }
  }));

Deno.test("the SQL API has sync_<stream>() and upsert_<stream>() per stream, and connection_health a last-synced column for each", () =>
  withTestDatabase(async (db) => {
    const fns = await db.sql<{ fn: string }[]>`
      select n.nspname || '.' || p.proname as fn from pg_proc p
        join pg_namespace n on n.oid = p.pronamespace
       where n.nspname in ('public', 'tether') and p.proname ~ '^(sync|upsert)_'`;
    const names = fns.map((r) => r.fn);
    assert.deepEqual(captured(names, /^public\.sync_(.+)$/), sorted(STREAMS));
    assert.deepEqual(captured(names, /^tether\.upsert_(.+)$/), sorted(STREAMS));
    const columns = await db.sql<{ name: string }[]>`
      select attname as name from pg_attribute
       where attrelid = 'tether.connection_health'::regclass and attnum > 0`;
    assert.deepEqual(
      captured(columns.map((c) => c.name), /^(.+)_last_synced_at$/),
      sorted(STREAMS),
    );
  }));
