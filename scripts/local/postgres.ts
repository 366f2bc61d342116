// The local PostgreSQL 15 cluster: Debian's packages, a data directory under
// .tether/, run as the `postgres` user (PostgreSQL refuses to run as root),
// pg_cron preloaded, and the stand-ins for pg_net and Vault installed as
// extensions so migrations can `create extension pg_net` exactly as on
// Supabase.
import { chmod, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fail, isPortFree, paths, run, runQuiet } from "./util.ts";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const PG_SHARE = "/usr/share/postgresql/15";
const PACKAGES = ["postgresql-15", "postgresql-15-cron"];

export interface ClusterOptions {
  port: number;
  password: string;
  vaultKey: string;
}

export function databaseUrl(port: number, password: string, database = "postgres"): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/** Installs PostgreSQL 15 and pg_cron from Debian when they are missing. */
export async function ensurePackages(): Promise<void> {
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

/** Installs the pg_net and Vault stand-ins from sql/local/ as extensions. */
export async function installStandInExtensions(): Promise<void> {
  const standIns = [
    { name: "pg_net", comment: "LOCAL STAND-IN for Supabase pg_net (Tether), never deployed" },
    {
      name: "supabase_vault",
      comment: "LOCAL STAND-IN for Supabase Vault (Tether), never deployed",
    },
  ];
  for (const { name, comment } of standIns) {
    const control = [
      `comment = '${comment}'`,
      `default_version = 'tether_local'`,
      `relocatable = false`,
      `superuser = true`,
      "",
    ].join("\n");
    const dir = join(PG_SHARE, "extension");
    await writeFile(join(dir, `${name}.control`), control);
    await copyFile(
      join(paths.root, "sql", "local", `${name}.sql`),
      join(dir, `${name}--tether_local.sql`),
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
    console.log(`Creating a PostgreSQL cluster in ${pgData}`);
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
  }
  await writeConfig(opts);
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
    "shared_preload_libraries = 'pg_cron'",
    "cron.database_name = 'postgres'",
    "cron.timezone = 'UTC'",
    // Jobs run in background workers, so pg_cron needs no password to connect.
    "cron.use_background_workers = on",
    "max_worker_processes = 64",
    // A throwaway development cluster: durability traded for fast test setup.
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    `tether_local.vault_key = '${opts.vaultKey}'`,
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
