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
    "status [--json]\n  One line per connection: provider, name, status, token expiry, last refresh, last error.",
  connect:
    "connect <provider> <external_id> <name> --credentials '<json>' [--config '<json>'] [--owner <uuid>] [--json]\n  Registers (or reconnects) a connection through the connect function.",
  refresh:
    "refresh [--provider <p>] [--connection <uuid>] [--force] [--json]\n  Runs the refresh-tokens function now and prints its counts.",
  runs:
    "runs [--connection <uuid>] [--kind refresh|sync|backfill|webhook] [--limit N] [--json]\n  Recent run records, newest first.",
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
          select provider, name, status, token_expires_at as token_expires,
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

try {
  await main(Deno.args);
} catch (err) {
  if (err instanceof UsageError || err instanceof StackError) {
    console.error(`tether: ${err.message}`);
    Deno.exit(2);
  }
  throw err;
}
