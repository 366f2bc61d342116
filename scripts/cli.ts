// npm run tether -- <command>: the operator CLI. Functions are called with
// supabase-js `functions.invoke`, exactly as a user's app would; status is read
// with SQL. Works against the local stack by default (.tether/stack.env), or a
// real project given SUPABASE_URL, TETHER_SERVICE_KEY and DATABASE_URL.
import { parseArgs } from "node:util";
import { createClient } from "@supabase/supabase-js";
import { connect as connectDb } from "../functions-shared/db/client.ts";
import { runRotateKey } from "../functions-shared/jobs/rotate_key.ts";
import { TokenVault } from "../functions-shared/vault.ts";
import { readStackEnv } from "./local/stack.ts";
import { StackError } from "./local/util.ts";

const HELP: Record<string, string> = {
  status:
    "status [--json]\n  One line per connection: id, provider, name, status, token expiry, last refresh, last sync per stream, last error.",
  connect:
    "connect <provider> <external_id> <name> --credentials '<json>' [--config '<json>'] [--owner <uuid>] [--json]\n  Registers (or reconnects) a connection through the connect function.",
  refresh:
    "refresh [--provider <p>] [--connection <uuid>] [--force] [--json]\n  Runs the refresh-tokens function now and prints its counts.",
  runs:
    "runs [--connection <uuid>] [--kind refresh|sync|backfill|webhook] [--limit N] [--json]\n  Recent run records, newest first.",
  backfill:
    "backfill start <connection> <stream> <from> <to> [--json]\n  Starts a backfill (dates: ISO 8601 with an offset, e.g. 2026-01-29T00:00:00Z) and shows its\n  progress until done; Ctrl-C leaves it running.\n" +
    "backfill status [<id>] [--json]   The backfill's progress (default: the newest).\n" +
    "backfill list [--json]            Every backfill, newest first.\n" +
    "backfill cancel <id> [--json]     Cancels it: the worker stops at its next page.",
  "rotate-key":
    "rotate-key [--batch N] [--json]\n  Re-encrypts every stored credential with the first key of TOKEN_ENCRYPTION_KEYS. Resumable.",
};

interface Target {
  supabaseUrl: string;
  serviceKey: string;
  databaseUrl: string;
  keyRing?: string;
}

async function target(): Promise<Target> {
  const env = Deno.env.toObject();
  if (env.SUPABASE_URL && env.TETHER_SERVICE_KEY && env.DATABASE_URL) {
    return {
      supabaseUrl: env.SUPABASE_URL,
      serviceKey: env.TETHER_SERVICE_KEY,
      databaseUrl: env.DATABASE_URL,
      keyRing: env.TOKEN_ENCRYPTION_KEYS,
    };
  }
  const stack = await readStackEnv();
  return {
    supabaseUrl: stack.SUPABASE_URL,
    serviceKey: stack.SERVICE_KEY,
    databaseUrl: stack.DATABASE_URL,
    keyRing: env.TOKEN_ENCRYPTION_KEYS ?? stack.TOKEN_ENCRYPTION_KEYS,
  };
}

class UsageError extends Error {}

function parseJsonFlag(name: string, value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  try {
    return JSON.parse(value);
  } catch {
    throw new UsageError(`--${name} must be JSON, e.g. --${name} '{"refresh_token":"..."}'`);
  }
}

async function invoke(t: Target, name: string, body: Record<string, unknown>) {
  const client = createClient(t.supabaseUrl, t.serviceKey, { auth: { persistSession: false } });
  const { data, error } = await client.functions.invoke(name, { body });
  if (error) {
    const context = (error as { context?: Response }).context;
    const detail = context ? await context.json().catch(() => null) : null;
    throw new UsageError(`${name}: ${detail?.message ?? error.message}`);
  }
  return data;
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(none)";
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown) =>
    v === null || v === undefined ? "-" : v instanceof Date ? v.toISOString() : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  return [
    line(cols),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map((r) => line(cols.map((c) => cell(r[c])))),
  ].join("\n");
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "help" || !(command in HELP)) {
    console.log("usage: npm run tether -- <command> [options]\n");
    for (const text of Object.values(HELP)) console.log(`  ${text.replaceAll("\n", "\n  ")}\n`);
    if (command && command !== "--help" && command !== "help") {
      throw new UsageError(`unknown command "${command}"`);
    }
    return;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      help: { type: "boolean" },
      json: { type: "boolean" },
      force: { type: "boolean" },
      provider: { type: "string" },
      connection: { type: "string" },
      credentials: { type: "string" },
      config: { type: "string" },
      owner: { type: "string" },
      kind: { type: "string" },
      limit: { type: "string" },
      batch: { type: "string" },
    },
  });
  if (values.help) return console.log(`usage: npm run tether -- ${HELP[command]}`);
  const t = await target();
  const print = (data: unknown, human: () => string) =>
    console.log(values.json ? JSON.stringify(data, null, 2) : human());

  switch (command) {
    case "status": {
      const sql = connectDb(t.databaseUrl, { max: 1, name: "tether-cli" });
      try {
        const rows = await sql`
          select id, provider, name, status, token_expires_at as token_expires,
                 last_token_refresh_at as last_refresh, orders_last_synced_at as orders_synced,
                 customers_last_synced_at as customers_synced, last_error
            from tether.connection_health order by provider, name`;
        print(rows, () => table(rows));
      } finally {
        await sql.end();
      }
      return;
    }
    case "connect": {
      const [provider, externalId, name] = positionals;
      if (!provider || !externalId || !name) throw new UsageError(`usage: ${HELP.connect}`);
      const data = await invoke(t, "connect", {
        provider,
        external_id: externalId,
        name,
        credentials: parseJsonFlag("credentials", values.credentials),
        config: parseJsonFlag("config", values.config),
        ...(values.owner ? { owner_id: values.owner } : {}),
      });
      print(data, () => `connected: ${data.name} (${data.provider}) ${data.connection_id}`);
      return;
    }
    case "refresh": {
      const data = await invoke(t, "refresh-tokens", {
        ...(values.provider ? { provider: values.provider } : {}),
        ...(values.connection ? { connection_id: values.connection } : {}),
        ...(values.force ? { force: true } : {}),
      });
      print(data, () => table([data]));
      return;
    }
    case "runs": {
      const limit = Number(values.limit ?? 20);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError("--limit must be a number");
      const sql = connectDb(t.databaseUrl, { max: 1, name: "tether-cli" });
      try {
        const rows = await sql`
          select r.id, c.provider, c.name, r.kind, r.stream, r.status, r.started_at,
                 r.added_count as added, r.updated_count as updated, r.error
            from tether.runs r left join tether.connections c on c.id = r.connection_id
           where (${values.connection ?? null}::uuid is null or r.connection_id = ${
          values.connection ?? null
        })
             and (${values.kind ?? null}::text is null or r.kind = ${values.kind ?? null})
           order by r.started_at desc, r.id desc limit ${limit}`;
        print(rows, () => table(rows));
      } finally {
        await sql.end();
      }
      return;
    }
    case "backfill": {
      await backfillCommand(t, positionals, Boolean(values.json));
      return;
    }
    case "rotate-key": {
      if (!t.keyRing) throw new UsageError("set TOKEN_ENCRYPTION_KEYS (new key first)");
      const vault = await TokenVault.fromKeyRing(t.keyRing);
      const sql = connectDb(t.databaseUrl, { max: 2, name: "tether-cli" });
      try {
        const result = await runRotateKey({ db: sql, vault }, {
          batchSize: values.batch ? Number(values.batch) : undefined,
          onProgress: (done, total) => {
            if (!values.json) Deno.stderr.writeSync(new TextEncoder().encode(`\r${done}/${total}`));
          },
        });
        if (!values.json) console.error("");
        print(
          result,
          () =>
            `re-encrypted ${result.rotated} value(s) with key ${result.active_key_id}; ${result.remaining} left on other keys`,
        );
      } finally {
        await sql.end();
      }
      return;
    }
  }
}

interface BackfillView {
  id: string;
  provider: string;
  name: string;
  stream: string;
  range_start: Date;
  range_end: Date;
  status: string;
  windows_done: number;
  records_count: number;
  percent: string;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

async function backfillRows(
  sql: ReturnType<typeof connectDb>,
  id: string | null,
  limit: number,
): Promise<BackfillView[]> {
  return await sql<BackfillView[]>`
    select b.id, c.provider, c.name, b.stream, b.range_start, b.range_end, b.status,
           b.windows_done, b.records_count,
           case when b.status = 'succeeded' then 100.0
                else round(100.0 * extract(epoch from (coalesce(b.covered_until, b.range_start)
                       - b.range_start)) / extract(epoch from (b.range_end - b.range_start)), 1)
           end::text as percent,
           b.last_error, b.created_at, b.finished_at
      from tether.backfills b join tether.connections c on c.id = b.connection_id
     where (${id}::uuid is null or b.id = ${id})
     order by b.created_at desc limit ${limit}`;
}

function progressBar(row: BackfillView): string {
  const pct = Number(row.percent);
  const filled = Math.max(0, Math.min(10, Math.floor(pct / 10)));
  return `[${"#".repeat(filled)}${".".repeat(10 - filled)}] ${pct.toFixed(1)}% windows ${
    row.windows_done.toLocaleString("en-US")
  } records ${row.records_count.toLocaleString("en-US")} ${row.status}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function backfillCommand(t: Target, args: string[], json: boolean): Promise<void> {
  const [sub, ...rest] = args;
  const usage = `usage: npm run tether -- ${HELP.backfill}`;
  const sql = connectDb(t.databaseUrl, { max: 1, name: "tether-cli" });
  const print = (data: unknown, human: () => string) =>
    console.log(json ? JSON.stringify(data, null, 2) : human());
  try {
    switch (sub) {
      case "start": {
        const [connection, stream, from, to] = rest;
        if (!connection || !stream || !from || !to) throw new UsageError(usage);
        // The function validates the dates (ISO 8601 with an offset) and the request (the same
        // SQL as start_backfill), creates the job and works on it; it continues by itself.
        const client = createClient(t.supabaseUrl, t.serviceKey, {
          auth: { persistSession: false },
        });
        const body = { connection_id: connection, stream, range_start: from, range_end: to };
        if (!UUID.test(connection)) {
          throw new UsageError("<connection> must be a connection id (uuid)");
        }
        const started = client.functions.invoke("backfill", { body });
        // The first invocation runs for up to its time budget: find the job as soon as it exists.
        let id: string | undefined;
        const answered = started.then(async ({ data, error }) => {
          if (error) {
            const context = (error as { context?: Response }).context;
            const detail = context ? await context.json().catch(() => null) : null;
            throw new UsageError(`backfill: ${detail?.message ?? error.message}`);
          }
          id ??= data.backfill_id;
        });
        let failed: unknown;
        answered.catch((err) => failed = err);
        while (!id) {
          if (failed) throw failed;
          const [row] = await sql<{ id: string }[]>`
            select id from tether.backfills
             where connection_id = ${connection} and stream = ${stream}
               and range_start = ${from}::timestamptz and range_end = ${to}::timestamptz
             order by created_at desc limit 1`.catch(() => []);
          if (row) id = row.id;
          else await new Promise((r) => setTimeout(r, 200));
        }
        if (!json) console.error(`backfill ${id} started (Ctrl-C leaves it running)`);
        Deno.addSignalListener("SIGINT", () => {
          console.error(`\nleft running: npm run tether -- backfill status ${id}`);
          Deno.exit(130);
        });
        while (true) {
          const [row] = await backfillRows(sql, id, 1);
          if (!row) throw new UsageError(`backfill ${id} disappeared`);
          if (!json) {
            Deno.stderr.writeSync(new TextEncoder().encode(`\r${progressBar(row)}   `));
          }
          if (!["pending", "running"].includes(row.status)) {
            if (!json) console.error("");
            print(row, () => table([row as unknown as Record<string, unknown>]));
            if (row.status !== "succeeded") Deno.exit(1);
            return;
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      case "status": {
        const id = rest[0] ?? null;
        if (id !== null && !UUID.test(id)) {
          throw new UsageError("<id> must be a backfill id (uuid)");
        }
        const rows = await backfillRows(sql, id, 1);
        if (rows.length === 0) throw new UsageError(id ? `no backfill ${id}` : "no backfills yet");
        print(rows[0], () => `${progressBar(rows[0]!)}\n${table(rows as never)}`);
        return;
      }
      case "list": {
        const rows = await backfillRows(sql, null, 1000);
        print(rows, () => table(rows as never));
        return;
      }
      case "cancel": {
        const id = rest[0];
        if (!id || !UUID.test(id)) throw new UsageError(usage);
        const [row] = await sql<{ status: string }[]>`
          select public.cancel_backfill(${id}) as status`.catch((err) => {
          throw new UsageError(err.message);
        });
        print({ id, status: row!.status }, () => `backfill ${id}: ${row!.status}`);
        return;
      }
      default:
        throw new UsageError(usage);
    }
  } finally {
    await sql.end();
  }
}

try {
  await main(Deno.args);
} catch (err) {
  if (err instanceof UsageError || err instanceof StackError) {
    console.error(`tether: ${err.message}`);
    Deno.exit(2);
  }
  throw err;
}
