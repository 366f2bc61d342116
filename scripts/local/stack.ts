// The embedded local stack: PostgreSQL 15 + pg_cron, pg_net and Vault (the real
// extensions when that PostgreSQL has them, else the stand-ins), migrations
// applied by the real Supabase CLI, the Edge Functions served by Deno, the
// stand-in pg_net worker where needed and the provider sandboxes. `up` is idempotent and
// leaves the servers running in the background; `down` stops exactly what
// `up` started.
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import {
  checkPgNetMode,
  databaseUrl,
  ensurePackages,
  initCluster,
  installStandInExtensions,
  type PgNetMode,
  pgNetMode,
  psql,
  startCluster,
  stopCluster,
} from "./postgres.ts";
import { ensureEdgeDeno } from "./edge_deno.ts";
import { loadOrCreateSecrets, type LocalSecrets } from "./secrets.ts";
import { envInt, fail, isPortFree, paths, run, waitFor } from "./util.ts";

export const TEMPLATE_DATABASE = "tether_template";

export interface StackConfig {
  pgPort: number;
  functionsPort: number;
  sandboxPort: number;
}

export function stackConfig(): StackConfig {
  return {
    pgPort: envInt("TETHER_PG_PORT", 54322),
    functionsPort: envInt("TETHER_FUNCTIONS_PORT", 54321),
    sandboxPort: envInt("TETHER_SANDBOX_PORT", 54329),
  };
}

export interface StackInfo {
  DATABASE_URL: string;
  SUPABASE_URL: string;
  FUNCTIONS_URL: string;
  SERVICE_KEY: string;
  SANDBOX_URL: string;
  TOKEN_ENCRYPTION_KEYS: string;
  TETHER_TEMPLATE_DATABASE: string;
  /** Which pg_net and Vault the cluster runs: `real` or `standin` (scripts/local/postgres.ts). */
  TETHER_PGNET: PgNetMode;
  /** The app-level webhook secrets the local functions verify with (see LOCAL_WEBHOOK_SECRETS). */
  SHOPIFY_CLIENT_SECRET: string;
  LIGHTSPEED_CLIENT_SECRET: string;
  QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN: string;
}

export function stackInfo(
  cfg: StackConfig,
  secrets: LocalSecrets,
  pgNet: PgNetMode,
): StackInfo {
  const supabaseUrl = `http://127.0.0.1:${cfg.functionsPort}`;
  return {
    DATABASE_URL: databaseUrl(cfg.pgPort, secrets.dbPassword),
    SUPABASE_URL: supabaseUrl,
    FUNCTIONS_URL: `${supabaseUrl}/functions/v1`,
    SERVICE_KEY: secrets.secretKey,
    SANDBOX_URL: `http://127.0.0.1:${cfg.sandboxPort}`,
    TOKEN_ENCRYPTION_KEYS: secrets.tokenEncryptionKeys,
    TETHER_TEMPLATE_DATABASE: TEMPLATE_DATABASE,
    TETHER_PGNET: pgNet,
    ...LOCAL_WEBHOOK_SECRETS,
  };
}

/** App credentials the sandboxes accept by default (sandbox/server.ts). */
export const SANDBOX_APPS = {
  SHOPIFY_CLIENT_ID: "sandbox-shopify-client",
  SHOPIFY_CLIENT_SECRET: "sandbox-shopify-secret",
  LIGHTSPEED_CLIENT_ID: "sandbox-lightspeed-client",
  LIGHTSPEED_CLIENT_SECRET: "sandbox-lightspeed-secret",
  QUICKBOOKS_CLIENT_ID: "sandbox-quickbooks-client",
  QUICKBOOKS_CLIENT_SECRET: "sandbox-quickbooks-secret",
  QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN: "sandbox-quickbooks-verifier",
};

/** The app-level webhook secrets of the local stack (the sandboxes' own), written to stack.env. */
export const LOCAL_WEBHOOK_SECRETS = {
  SHOPIFY_CLIENT_SECRET: SANDBOX_APPS.SHOPIFY_CLIENT_SECRET,
  LIGHTSPEED_CLIENT_SECRET: SANDBOX_APPS.LIGHTSPEED_CLIENT_SECRET,
  QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN: SANDBOX_APPS.QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN,
};

/** The environment a deployed function gets, pointed at one local database. */
export function functionEnv(
  secrets: LocalSecrets,
  opts: { databaseUrl: string; supabaseUrl: string },
): Record<string, string> {
  return {
    SUPABASE_URL: opts.supabaseUrl,
    SUPABASE_DB_URL: opts.databaseUrl,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secrets.secretKey }),
    SUPABASE_JWKS: JSON.stringify(secrets.jwks),
    SUPABASE_JWT_SECRET: secrets.jwtSecret,
    TETHER_INVOKE_KEY: secrets.invokeKey,
    TOKEN_ENCRYPTION_KEYS: secrets.tokenEncryptionKeys,
    // OAuth connect: a local state-signing secret (derived from a local secret, never deployed).
    TETHER_OAUTH_STATE_SECRET: createHash("sha256")
      .update(`tether-oauth-state:${secrets.jwtSecret}`)
      .digest("base64url"),
    ...SANDBOX_APPS,
    // The console's demo sign-in (functions-shared/http/console.ts): local only, and refused
    // unless SUPABASE_URL is a loopback address as well.
    TETHER_CONSOLE_LOCAL_SIGN_IN: "1",
  };
}

export async function readStackEnv(): Promise<StackInfo> {
  if (!existsSync(paths.stackEnv)) {
    fail("The local stack is not up: run `npm run stack:up` first.");
  }
  const text = await readFile(paths.stackEnv, "utf8");
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Z_]+)=(.*)$/);
    if (m) env[m[1]!] = m[2]!;
  }
  return env as unknown as StackInfo;
}

/** Applies the Supabase bootstrap stand-ins, then the migrations with the Supabase CLI. */
export async function prepareDatabase(cfg: StackConfig, secrets: LocalSecrets, database: string) {
  await psql(database, { file: join(paths.root, "sql", "local", "supabase.sql") });
  const url = databaseUrl(cfg.pgPort, secrets.dbPassword, database);
  await refuseForeignHistory(url);
  // --include-all: a long-lived local database may already hold a migration dated after one that
  // a merge brought in; locally every missing migration is applied, whatever its date.
  await run(paths.supabaseBin, [
    "db",
    "push",
    `--remote=${url}`,
    "--yes",
    "--skip-vault",
    "--include-all",
  ], {
    quiet: true,
    hint: "the Supabase CLI could not apply supabase/migrations",
    env: { SUPABASE_AGENT: "no", DO_NOT_TRACK: "1" },
  });
}

/**
 * A local database that applied migrations this checkout does not have (those of an older
 * checkout, such as Tether's development migrations before they were folded into the 0.1
 * baseline) cannot be brought up to date: `supabase db push` refuses it with a repair hint that
 * would only hide the mismatch. It holds local data only, so say how to start it afresh.
 */
async function refuseForeignHistory(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [history] = await sql<{ known: boolean }[]>`
      select to_regclass('supabase_migrations.schema_migrations') is not null as known`;
    if (!history?.known) return;
    const applied = await sql<{ version: string }[]>`
      select version from supabase_migrations.schema_migrations order by version`;
    const local = new Set(
      readdirSync(join(paths.root, "supabase", "migrations"))
        .map((f) => f.match(/^(\d+)_.*\.sql$/)?.[1])
        .filter((v) => v !== undefined),
    );
    const foreign = applied.map((r) => r.version).filter((v) => !local.has(v));
    if (foreign.length > 0) {
      fail(
        `The local database holds ${foreign.length} migration(s) that supabase/migrations does not ` +
          `(${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""}): it was made by ` +
          `another checkout of Tether. It holds local test data only: start it afresh with ` +
          `\`npm run stack:down && rm -rf ${paths.pgRoot}\`, then run this again.`,
      );
    }
  } finally {
    await sql.end();
  }
}

/** Rebuilds the template that every test database is cloned from. */
async function rebuildTemplate(cfg: StackConfig, secrets: LocalSecrets): Promise<void> {
  const sql = postgres(databaseUrl(cfg.pgPort, secrets.dbPassword), { max: 1, onnotice: () => {} });
  try {
    const exists = await sql`select 1 from pg_database where datname = ${TEMPLATE_DATABASE}`;
    if (exists.length > 0) {
      await sql.unsafe(`alter database ${TEMPLATE_DATABASE} is_template false`);
      await sql.unsafe(`drop database ${TEMPLATE_DATABASE} with (force)`);
    }
    await sql.unsafe(`create database ${TEMPLATE_DATABASE}`);
  } finally {
    await sql.end();
  }
  await prepareDatabase(cfg, secrets, TEMPLATE_DATABASE);
  await psql("postgres", {
    command: `alter database ${TEMPLATE_DATABASE} is_template true`,
  });
}

/** Stores the functions URL and the invoke key where the SQL API reads them (Vault). */
export async function storeFunctionSecrets(
  databaseUrl: string,
  functionsUrl: string,
  invokeKey: string,
): Promise<void> {
  const secrets = { tether_functions_url: functionsUrl, tether_invoke_key: invokeKey };
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    // What a stack older than the invoke key stored; nothing reads it any more.
    await sql`delete from vault.secrets where name = 'tether_service_key'`;
    for (const [name, value] of Object.entries(secrets)) {
      const [row] = await sql`select id from vault.secrets where name = ${name}`;
      if (row) await sql`select vault.update_secret(${row.id}, ${value})`;
      else await sql`select vault.create_secret(${value}, ${name}, 'Tether: set by stack:up')`;
    }
  } finally {
    await sql.end();
  }
}

/**
 * Removes the connections whose sandbox account is gone: the sandboxes keep their accounts in
 * memory, so after they restart every connection pointing at them (the "Demo …" ones of
 * `npm start`, `connect --sandbox`) would only fail, as a wall of reauth_required. Returns their
 * names. Connections to anything else are kept.
 */
export async function forgetSandboxConnections(
  sql: postgres.Sql,
  sandboxUrl: string,
): Promise<string[]> {
  const prefix = `${sandboxUrl.replace(/\/+$/, "")}/`;
  const rows = await sql<{ name: string }[]>`
    delete from tether.connections
     where left(config->>'api_base_url', ${prefix.length}) = ${prefix}
        or left(config->>'auth_base_url', ${prefix.length}) = ${prefix}
    returning name`;
  return rows.map((r) => r.name).sort();
}

function pidAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function servePid(): Promise<number | null> {
  if (!existsSync(paths.servePid)) return null;
  const pid = Number((await readFile(paths.servePid, "utf8")).trim());
  return pid > 0 && pidAlive(pid) ? pid : null;
}

async function startDatabase(
  cfg: StackConfig,
  secrets: LocalSecrets,
  pgNet: PgNetMode,
): Promise<void> {
  await checkPgNetMode(pgNet);
  await ensurePackages();
  await ensureEdgeDeno();
  if (pgNet === "standin") await installStandInExtensions();
  await initCluster({
    port: cfg.pgPort,
    password: secrets.dbPassword,
    vaultKey: secrets.vaultKey,
    pgNet,
  });
  await startCluster(cfg.pgPort);
  // The migrations enable pg_cron (in `postgres`, its cron.database_name), pg_net and Vault.
  await prepareDatabase(cfg, secrets, "postgres");
  if (pgNet === "real") {
    // A test run that ended early may have left the real pg_net worker pointed at its database
    // (scripts/local/pg_net_worker.ts): back to the main one, where pg_cron's calls are queued.
    await psql("postgres", { command: "alter system reset pg_net.database_name" });
    await psql("postgres", { command: "select net.worker_restart()" });
  }
  await rebuildTemplate(cfg, secrets);
}

export interface UpOptions {
  /** Run the servers in this process (npm start) instead of in the background. */
  foreground?: boolean;
  log?: (line: string) => void;
}

/** Brings the whole stack up; returns where everything is. */
export async function stackUp(
  opts: UpOptions = {},
): Promise<{ info: StackInfo; stop?: () => Promise<void> }> {
  await Deno.mkdir(paths.state, { recursive: true });
  const cfg = stackConfig();
  const secrets = await loadOrCreateSecrets();
  const pgNet = await pgNetMode();
  const info = stackInfo(cfg, secrets, pgNet);
  const say = opts.log ?? console.log;

  say(`PostgreSQL 15 + pg_cron, pg_net and Vault (${pgNet}), migrations...`);
  await startDatabase(cfg, secrets, pgNet);

  let stop: (() => Promise<void>) | undefined;
  const running = await servePid();
  if (running) {
    say(`Functions, sandboxes and the pg_net worker already running (pid ${running}).`);
  } else {
    for (const port of [cfg.functionsPort, cfg.sandboxPort]) {
      if (!(isPortFree(port))) {
        fail(
          `Port ${port} is already taken. Stop whatever uses it, or choose other ports with ` +
            `TETHER_FUNCTIONS_PORT / TETHER_SANDBOX_PORT.`,
        );
      }
    }
    say("Functions, sandboxes and the pg_net worker...");
    if (opts.foreground) {
      const { serveStack } = await import("./serve.ts");
      stop = (await serveStack(cfg, secrets, pgNet, opts.log)).stop;
    } else {
      await startBackgroundServer(info);
    }
  }
  await waitFor("the functions gateway", () => ok(`${info.SUPABASE_URL}/health`), 60_000);
  await waitFor("the sandboxes", () => ok(`${info.SANDBOX_URL}/_sandbox/health`), 30_000);
  await storeFunctionSecrets(info.DATABASE_URL, info.FUNCTIONS_URL, secrets.invokeKey);
  if (!running) {
    // Fresh sandboxes: the accounts of the previous ones are gone, and so are their connections.
    const sql = postgres(info.DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const gone = await forgetSandboxConnections(sql, info.SANDBOX_URL);
      if (gone.length > 0) {
        say(
          `Removed ${gone.length} connection(s) of the previous sandboxes, whose accounts lived ` +
            `in memory: ${gone.join(", ")} (npm start registers new demo ones).`,
        );
      }
    } finally {
      await sql.end();
    }
  }
  const envText = Object.entries(info).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
  await writeFile(paths.stackEnv, envText, { mode: 0o600 });
  return { info, stop };
}

async function ok(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.body?.cancel();
  return res.ok;
}

async function startBackgroundServer(info: StackInfo): Promise<void> {
  // `exec` keeps the pid: the shell becomes the server, with its output in the log.
  const serve = join(paths.root, "scripts", "local", "serve.ts");
  const child = new Deno.Command("sh", {
    args: ["-c", `exec "$0" run -A "$1" >>"$2" 2>&1`, Deno.execPath(), serve, paths.serveLog],
    cwd: paths.root,
    env: { TETHER_PGNET: info.TETHER_PGNET },
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  child.unref();
  await writeFile(paths.servePid, String(child.pid));
  await waitFor("the background server", async () => {
    if (exited) {
      const tail = (await readFile(paths.serveLog, "utf8")).split("\n").slice(-20).join("\n");
      fail(`the background server exited; last lines of ${paths.serveLog}:\n${tail}`);
    }
    return await ok(`${info.SUPABASE_URL}/health`);
  }, 90_000);
}

/** Stops what stackUp started: the background server, then PostgreSQL. */
export async function stackDown(): Promise<void> {
  const pid = await servePid();
  if (pid) {
    Deno.kill(pid, "SIGTERM");
    await waitFor("the background server to stop", () => Promise.resolve(!pidAlive(pid)), 30_000);
  }
  if (existsSync(paths.servePid)) await Deno.remove(paths.servePid);
  await stopCluster();
  if (existsSync(paths.stackEnv)) await Deno.remove(paths.stackEnv);
}

/**
 * Runs `work` with the stack up: brings it up (idempotent) and, if it was not
 * running before, stops it again afterwards, so a one-shot command leaves the
 * machine as it found it.
 */
export async function withStack<T>(
  work: (info: StackInfo) => Promise<T>,
  log: (line: string) => void = (l) => console.log(`  ${l}`),
): Promise<T> {
  const wasUp = (await servePid()) !== null && existsSync(paths.stackEnv);
  try {
    const { info } = await stackUp({ log });
    return await work(info);
  } finally {
    if (!wasUp) await stackDown().catch((err) => console.error(`stack down: ${err.message}`));
  }
}
