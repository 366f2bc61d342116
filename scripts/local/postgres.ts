// The local PostgreSQL 15 cluster: Debian's packages (or the install TETHER_PG_PREFIX names), a
// data directory under .tether/, run as the `postgres` user (PostgreSQL refuses to run as root),
// pg_cron preloaded, and pg_net and Vault: the real extensions when that PostgreSQL has them
// installed, else the stand-ins of sql/local/ (docs/architecture.md, "Local stack").
import { chmod, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail, isPortFree, paths, run, runQuiet } from "./util.ts";

/** The PostgreSQL 15 install the stack runs: its `bin/`, share and library directories. */
export const PG_PREFIX = Deno.env.get("TETHER_PG_PREFIX") || "/usr/lib/postgresql/15";
export const PG_BIN = join(PG_PREFIX, "bin");
const PACKAGES = ["postgresql-15", "postgresql-15-cron"];

/**
 * Where pg_net and Vault come from. `real`: Supabase's extensions, built for and installed in
 * this PostgreSQL (pg_net's background worker, Vault's libsodium encryption); `standin`: the SQL
 * and JS stand-ins of sql/local/ and scripts/local/net_worker.ts.
 */
export type PgNetMode = "real" | "standin";

/** The control-file version of the stand-ins: what tells them apart from the real extensions. */
export const STANDIN_VERSION = "tether_local";

/** The stand-ins' extension names: never `pg_net` or `supabase_vault`, so they cannot collide. */
export const STANDIN_EXTENSIONS = {
  pg_net: "tether_standin_pg_net",
  supabase_vault: "tether_standin_supabase_vault",
} as const;

const REAL_EXTENSIONS = Object.keys(STANDIN_EXTENSIONS) as (keyof typeof STANDIN_EXTENSIONS)[];

export interface PgInstall {
  /** `pg_config --sharedir`: extension control files live in its `extension/`. */
  share: string;
  /** `pg_config --pkglibdir`: the extensions' shared libraries. */
  lib: string;
}

let install: Promise<PgInstall> | undefined;

/** The install's directories, as its own pg_config reports them (a relocated copy reports its own). */
export function pgInstall(): Promise<PgInstall> {
  install ??= (async () => {
    const [share, lib] = (await runQuiet(join(PG_BIN, "pg_config"), ["--sharedir", "--pkglibdir"]))
      .trim().split("\n");
    return { share: share!, lib: lib! };
  })();
  return install;
}

/**
 * True when the install has the real pg_net and supabase_vault: what `pg_available_extensions`
 * lists (a control file in <sharedir>/extension) at a version that is not a stand-in's, and the
 * shared library the server must preload.
 */
export function hasRealExtensions(inst: PgInstall): boolean {
  return REAL_EXTENSIONS.every((name) => {
    const control = join(inst.share, "extension", `${name}.control`);
    if (!existsSync(control) || !existsSync(join(inst.lib, `${name}.so`))) return false;
    const version = readFileSync(control, "utf8").match(/^\s*default_version\s*=\s*'([^']*)'/m);
    return version !== null && version[1] !== STANDIN_VERSION;
  });
}

/**
 * TETHER_PGNET: `real`, `standin` or `auto` (the default: real when the install has both real
 * extensions). `real` without them is an error that says how to get them.
 */
export async function pgNetMode(
  setting = Deno.env.get("TETHER_PGNET") || "auto",
): Promise<PgNetMode> {
  if (setting !== "auto" && setting !== "real" && setting !== "standin") {
    fail(`TETHER_PGNET must be real, standin or auto, got "${setting}"`);
  }
  if (setting === "standin") return "standin";
  const inst = await pgInstall();
  if (hasRealExtensions(inst)) return "real";
  if (setting === "real") {
    fail(
      `TETHER_PGNET=real, but the PostgreSQL in ${PG_PREFIX} has no real pg_net and ` +
        `supabase_vault (control files in ${join(inst.share, "extension")}, libraries in ` +
        `${inst.lib}). Build them into it (README, "The real pg_net and Vault") and set ` +
        `TETHER_PG_PREFIX, or use TETHER_PGNET=auto.`,
    );
  }
  return "standin";
}

export interface ClusterOptions {
  port: number;
  password: string;
  vaultKey: string;
  pgNet: PgNetMode;
}

export function databaseUrl(port: number, password: string, database = "postgres"): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/** Installs PostgreSQL 15 and pg_cron from Debian when they are missing. */
export async function ensurePackages(): Promise<void> {
  if (PG_PREFIX !== "/usr/lib/postgresql/15") {
    // A PostgreSQL of one's own: nothing to install, but it must be there.
    if (!existsSync(join(PG_BIN, "postgres"))) fail(`TETHER_PG_PREFIX: no ${PG_BIN}/postgres`);
    if (!existsSync(join((await pgInstall()).lib, "pg_cron.so"))) {
      fail(`TETHER_PG_PREFIX: the PostgreSQL in ${PG_PREFIX} has no pg_cron`);
    }
    return;
  }
  const missing = [];
  if (!existsSync(join(PG_BIN, "postgres"))) missing.push("postgresql-15");
  if (!existsSync("/usr/lib/postgresql/15/lib/pg_cron.so")) missing.push("postgresql-15-cron");
  if (missing.length === 0) return;
  if (!existsSync("/usr/bin/apt-get")) {
    fail(
      `PostgreSQL 15 with pg_cron is needed and ${
        missing.join(", ")
      } is missing, but there is no apt-get here. Install ${
        PACKAGES.join(" and ")
      } with your package manager.`,
    );
  }
  if (Deno.uid() !== 0) {
    fail(
      `PostgreSQL 15 with pg_cron is needed and ${missing.join(", ")} is missing. ` +
        `Run as root, or install it first: sudo apt-get install -y ${PACKAGES.join(" ")}`,
    );
  }
  console.log(`Installing ${missing.join(", ")} from Debian...`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], { env });
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
}

/**
 * Installs the pg_net and Vault stand-ins from sql/local/ as extensions named
 * tether_standin_pg_net and tether_standin_supabase_vault: a real pg_net or supabase_vault
 * installed in the same PostgreSQL is never overwritten. sql/local/supabase.sql creates them
 * where the server does not preload the real ones.
 */
export async function installStandInExtensions(): Promise<void> {
  const dir = join((await pgInstall()).share, "extension");
  for (const [real, name] of Object.entries(STANDIN_EXTENSIONS)) {
    const control = [
      `comment = 'LOCAL STAND-IN for Supabase ${real} (Tether), never deployed'`,
      `default_version = '${STANDIN_VERSION}'`,
      `relocatable = false`,
      `superuser = true`,
      "",
    ].join("\n");
    await writeFile(join(dir, `${name}.control`), control);
    await copyFile(
      join(paths.root, "sql", "local", `${real}.sql`),
      join(dir, `${name}--${STANDIN_VERSION}.sql`),
    );
  }
}

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  // PostgreSQL refuses to run as root; as any other user it runs as that user.
  return Deno.uid() === 0 ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

export async function initCluster(opts: ClusterOptions): Promise<void> {
  const { pgData, pgRoot, socketDir } = paths;
  await mkdir(socketDir, { recursive: true });
  await giveToPostgres(pgRoot);
  await giveToPostgres(socketDir);
  if (!existsSync(join(pgData, "PG_VERSION"))) {
    console.log(`Creating a PostgreSQL cluster in ${pgData} (pg_net and Vault: ${opts.pgNet})`);
    const pwfile = join(pgRoot, "pwfile");
    await writeFile(pwfile, opts.password + "\n");
    await chmod(pwfile, 0o600);
    await giveToPostgres(pwfile);
    const [cmd, args] = asPostgres(join(PG_BIN, "initdb"), [
      "-D",
      pgData,
      "-U",
      "postgres",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      `--pwfile=${pwfile}`,
      "-E",
      "UTF8",
      "--no-locale",
    ]);
    await run(cmd, args, { quiet: true });
    await Deno.remove(pwfile);
    await writeFile(paths.pgNetMode, opts.pgNet);
  }
  if (opts.pgNet === "real") await writeVaultRootKey();
  await writeConfig(opts);
}

/**
 * A cluster keeps the pg_net and Vault it was created with: its databases hold that extension's
 * objects (and Vault secrets encrypted under its key). A cluster from before the choice existed
 * has the stand-ins.
 */
export async function checkPgNetMode(wanted: PgNetMode): Promise<void> {
  if (!existsSync(join(paths.pgData, "PG_VERSION"))) return;
  const had = existsSync(paths.pgNetMode)
    ? (await readFile(paths.pgNetMode, "utf8")).trim()
    : "standin";
  if (had === wanted) return;
  fail(
    `The cluster in ${paths.pgData} was created with the ${had} pg_net and Vault, and this ` +
      `start would use the ${wanted} ones. Keep TETHER_PGNET=${had}, or start a fresh cluster: ` +
      `npm run stack:down && rm -rf ${paths.pgRoot}`,
  );
}

/**
 * The real Vault's root key: supabase_vault, preloaded, runs vault.getkey_script once at server
 * start and reads 64 hex characters from it (supabase/vault src/supabase_vault.c). The key is made
 * once and kept in a file only `postgres` may read; the script prints it.
 */
async function writeVaultRootKey(): Promise<void> {
  const { vaultRootKey, vaultGetkey } = paths;
  if (!existsSync(vaultRootKey)) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    await writeFile(vaultRootKey, hex + "\n", { mode: 0o600 });
  }
  await chmod(vaultRootKey, 0o600);
  await writeFile(vaultGetkey, `#!/bin/sh\nexec cat '${vaultRootKey}'\n`, { mode: 0o700 });
  await chmod(vaultGetkey, 0o700);
  await giveToPostgres(vaultRootKey);
  await giveToPostgres(vaultGetkey);
}

async function writeConfig(opts: ClusterOptions): Promise<void> {
  // Everything Tether sets lives in one included file, rewritten on every
  // stack:up so a changed port or key takes effect on the next start.
  const conf = join(paths.pgData, "postgresql.conf");
  const include = "include_if_exists = 'tether.conf'";
  const base = await readFile(conf, "utf8");
  if (!base.includes(include)) await writeFile(conf, `${base}\n${include}\n`);
  const settings = [
    "# Written by scripts/local/postgres.ts on every stack:up; edits are lost.",
    `port = ${opts.port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${paths.socketDir}'`,
    "max_connections = 300",
    ...(opts.pgNet === "real"
      ? [
        "shared_preload_libraries = 'pg_cron,pg_net,supabase_vault'",
        // The real pg_net worker serves this one database (tests point it at theirs:
        // scripts/local/pg_net.ts); Vault reads its root key from this script at start.
        "pg_net.database_name = 'postgres'",
        `vault.getkey_script = '${paths.vaultGetkey}'`,
      ]
      : ["shared_preload_libraries = 'pg_cron'"]),
    "cron.database_name = 'postgres'",
    "cron.timezone = 'UTC'",
    // Jobs run in background workers, so pg_cron needs no password to connect.
    "cron.use_background_workers = on",
    "max_worker_processes = 64",
    // A throwaway development cluster: durability traded for fast test setup.
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    ...(opts.pgNet === "standin" ? [`tether_local.vault_key = '${opts.vaultKey}'`] : []),
    "",
  ].join("\n");
  await writeFile(join(paths.pgData, "tether.conf"), settings, { mode: 0o600 });
  await giveToPostgres(join(paths.pgData, "tether.conf"));
}

let postgresIds: Promise<[number, number]> | undefined;

/** When running as root, the server's files must belong to the `postgres` user. */
async function giveToPostgres(path: string): Promise<void> {
  if (Deno.uid() !== 0) return;
  postgresIds ??= Promise.all(
    ["-u", "-g"].map(async (flag) => Number((await runQuiet("id", [flag, "postgres"])).trim())),
  ) as Promise<[number, number]>;
  const [uid, gid] = await postgresIds;
  await Deno.chown(path, uid, gid);
}

export async function isRunning(): Promise<boolean> {
  if (!existsSync(join(paths.pgData, "PG_VERSION"))) return false;
  const [cmd, args] = asPostgres(join(PG_BIN, "pg_ctl"), ["status", "-D", paths.pgData]);
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
  return out.code === 0;
}

/**
 * True when the running server's binary was replaced under it (an apt upgrade of
 * postgresql-15, e.g. by installing postgresql-server-dev-15): it keeps running the deleted
 * binary and loads libraries of the new version, so it must be restarted.
 */
async function runsReplacedBinary(): Promise<boolean> {
  try {
    const pid = Number(
      (await readFile(join(paths.pgData, "postmaster.pid"), "utf8")).split("\n")[0],
    );
    return (await Deno.readLink(`/proc/${pid}/exe`)).endsWith(" (deleted)");
  } catch {
    return false;
  }
}

export async function startCluster(port: number): Promise<void> {
  if (await isRunning()) {
    if (!(await runsReplacedBinary())) return;
    console.error("PostgreSQL's binaries were upgraded under the running server: restarting it.");
    await stopCluster();
  }
  if (!(isPortFree(port))) {
    fail(
      `Port ${port} is already taken, so PostgreSQL cannot listen there. ` +
        `Stop whatever uses it, or choose another port: TETHER_PG_PORT=54332 npm run stack:up`,
    );
  }
  const [cmd, args] = asPostgres(join(PG_BIN, "pg_ctl"), [
    "start",
    "-D",
    paths.pgData,
    "-l",
    join(paths.pgRoot, "postgres.log"),
    "-w",
    "-t",
    "60",
  ]);
  await run(cmd, args, { quiet: true, hint: `see ${join(paths.pgRoot, "postgres.log")}` });
}

export async function stopCluster(): Promise<void> {
  if (!(await isRunning())) return;
  const [cmd, args] = asPostgres(join(PG_BIN, "pg_ctl"), [
    "stop",
    "-D",
    paths.pgData,
    "-m",
    "fast",
    "-w",
  ]);
  await run(cmd, args, { quiet: true });
}

/**
 * Stops at once (`-m immediate`) whatever cluster runs in `dataDir`, if one does: what a test
 * that started a stack of its own in a private state directory leaves behind. Never fails.
 */
export async function stopStrayCluster(dataDir: string): Promise<void> {
  if (!existsSync(join(dataDir, "postmaster.pid"))) return;
  const [cmd, args] = asPostgres(join(PG_BIN, "pg_ctl"), [
    "stop",
    "-D",
    dataDir,
    "-m",
    "immediate",
    "-w",
  ]);
  await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
}

/** Runs a SQL file or string with psql over the local socket, stopping at the first error. */
export async function psql(database: string, sql: { file: string } | { command: string }) {
  const [cmd, args] = asPostgres(join(PG_BIN, "psql"), [
    "-h",
    paths.socketDir,
    "-p",
    String(await currentPort()),
    "-d",
    database,
    "-v",
    "ON_ERROR_STOP=1",
    "-q",
    "-X",
    ...("file" in sql ? ["-f", sql.file] : ["-c", sql.command]),
  ]);
  await run(cmd, args, { quiet: true });
}

async function currentPort(): Promise<number> {
  const conf = await readFile(join(paths.pgData, "tether.conf"), "utf8");
  const match = conf.match(/^port = (\d+)$/m);
  if (!match) fail("tether.conf has no port: run npm run stack:up");
  return Number(match[1]);
}
