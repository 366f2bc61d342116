// Tether installed into a Supabase project that already has its own migration history, functions
// and cron jobs (#13): `npm run tether -- install` copies the migrations into the project's
// supabase/migrations, the project's own `supabase db push` (the real CLI) applies them, a newer
// Tether's install adds only what is new, and uninstall removes Tether and nothing else. Each
// project is a real database on the local stack, migrated by the CLI from a real project directory.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import {
  planInstall,
  planUninstall,
  publicObjects,
  tetherSource,
  writePlan,
} from "../scripts/cli/install.ts";
import { psql } from "../scripts/local/postgres.ts";
import { paths } from "../scripts/local/util.ts";
import { runScript, stackEnv } from "./helpers/stack.ts";

const USER_MIGRATIONS: Record<string, string> = {
  "20250101000000_shop.sql": `
create table public.products (id bigint primary key, name text not null);
create function public.restock() returns integer language sql as $$ select 1 $$;`,
  "20250215000000_reports.sql": `
create function public.sync_report() returns text language sql as $$ select 'report' $$;
create view public.product_names as select name from public.products;`,
};

interface Shop {
  dir: string;
  db: string;
  url: string;
  sql: postgres.Sql;
  admin: postgres.Sql;
  cronJob: string;
  push(): Promise<{ ok: boolean; output: string }>;
  migrations(): string[];
  drop(): Promise<void>;
}

/** A shop's project: its directory, its database with its history pushed, a cron job of its own. */
async function shop(extra: Record<string, string> = {}): Promise<Shop> {
  const env = await stackEnv();
  const suffix = crypto.randomUUID().slice(0, 8);
  const db = `shop_${suffix}`;
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${db}`);
  // What every Supabase project has before its first migration (roles, auth, extensions, Vault).
  await psql(db, { file: join(paths.root, "sql", "local", "supabase.sql") });
  const url = new URL(env.DATABASE_URL);
  url.pathname = `/${db}`;
  const dir = Deno.makeTempDirSync({ prefix: "tether-shop-" });
  mkdirSync(join(dir, "supabase", "migrations"), { recursive: true });
  writeFileSync(join(dir, "supabase", "config.toml"), `project_id = "shop-${suffix}"\n`);
  for (const [file, text] of Object.entries({ ...USER_MIGRATIONS, ...extra })) {
    writeFileSync(join(dir, "supabase", "migrations", file), text);
  }
  const push = async () => {
    const out = await new Deno.Command(paths.supabaseBin, {
      args: ["db", "push", `--remote=${url}`, "--yes"],
      cwd: dir,
      env: { SUPABASE_AGENT: "no", DO_NOT_TRACK: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return { ok: out.code === 0, output };
  };
  const pushed = await push();
  assert.ok(pushed.ok, pushed.output);
  const cronJob = `shop-restock-${suffix}`;
  await admin`select cron.schedule_in_database(${cronJob}, '0 3 * * *',
                'select public.restock()', ${db})`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  await sql`insert into public.products values (1, 'anvil')`;
  return {
    dir,
    db,
    url: url.toString(),
    sql,
    admin,
    cronJob,
    push,
    migrations: () => readdirSync(join(dir, "supabase", "migrations")).sort(),
    drop: async () => {
      await sql.end();
      await admin`select cron.unschedule(jobid) from cron.job where jobname = ${cronJob}`;
      await admin.unsafe(`drop database if exists ${db} with (force)`);
      await admin.end();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

async function history(s: Shop): Promise<string[]> {
  const rows = await s.sql<{ version: string }[]>`
    select version from supabase_migrations.schema_migrations order by version`;
  return rows.map((r) => r.version);
}

/** The shop's own objects, all still there and working. */
async function assertShopIntact(s: Shop) {
  const [row] = await s.sql`
    select public.restock() as restock, public.sync_report() as report,
           (select string_agg(name, ',') from public.product_names) as names`;
  assert.deepEqual({ ...row }, { restock: 1, report: "report", names: "anvil" });
  const [job] = await s.admin`select schedule, command, database, active from cron.job
                               where jobname = ${s.cronJob}`;
  assert.deepEqual({ ...job }, {
    schedule: "0 3 * * *",
    command: "select public.restock()",
    database: s.db,
    active: true,
  });
}

async function tetherPresent(s: Shop) {
  const [row] = await s.sql`
    select to_regnamespace('tether') is not null as schema,
           to_regprocedure('public.refresh_tokens(text)') is not null as api,
           to_regclass('public.tether_connections') is not null as view`;
  return { ...row };
}

/** A newer Tether: this checkout plus one migration, version 0.2.0. */
function newerTether(): string {
  const root = Deno.makeTempDirSync({ prefix: "tether-newer-" });
  cpSync(join(paths.root, "supabase"), join(root, "supabase"), { recursive: true });
  writeFileSync(join(root, "package.json"), JSON.stringify({ name: "tether", version: "0.2.0" }));
  writeFileSync(
    join(root, "supabase", "migrations", "20990101000000_newer.sql"),
    "create table tether.newer_things (id integer primary key);\n" +
      "comment on table tether.newer_things is 'A newer Tether''s table.';\n",
  );
  return root;
}

Deno.test("install, upgrade and uninstall in a project with its own history, functions and cron jobs", async () => {
  const s = await shop();
  const newer = newerTether();
  try {
    // Before #13 the only path was `supabase db push` of Tether's own directory, which the CLI
    // refuses for a project with a history of its own.
    const own = await new Deno.Command(paths.supabaseBin, {
      args: ["db", "push", `--remote=${s.url}`, "--yes", "--dry-run"],
      cwd: paths.root,
      env: { SUPABASE_AGENT: "no", DO_NOT_TRACK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.notEqual(own.code, 0);
    assert.match(new TextDecoder().decode(own.stderr), /Remote migration versions not found/);

    // The CLI command, dry run: says what it would write, writes nothing.
    const dry = await runScript([
      "scripts/cli.ts",
      "install",
      "--project-dir",
      s.dir,
      "--dry-run",
      "--json",
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    const dryPlan = JSON.parse(dry.stdout);
    const source = tetherSource();
    assert.equal(dryPlan.written.length, source.migrations.length + 1);
    assert.deepEqual(s.migrations(), Object.keys(USER_MIGRATIONS));

    // Install: a preflight, then every Tether migration, after the shop's own, headed with their
    // origin; the shop's files untouched.
    const { plan, files } = planInstall(s.dir);
    writePlan(s.dir, files);
    const all = s.migrations();
    assert.deepEqual(all.slice(0, 2), Object.keys(USER_MIGRATIONS));
    assert.match(all[2]!, /^\d{14}_tether_preflight\.sql$/);
    assert.ok(all[2]! > "20250215000000", "the copies come after the shop's latest migration");
    assert.deepEqual(
      plan.written.slice(1).map((w) => w.from),
      source.migrations.map((m) => m.file),
    );
    const first = readFileSync(join(s.dir, "supabase", "migrations", all[3]!), "utf8");
    assert.match(
      first,
      new RegExp(
        `^-- tether-migration: ${source.migrations[0]!.file} sha256:[0-9a-f]{64} tether:0\\.1\\.0$`,
        "m",
      ),
    );
    for (const [file, text] of Object.entries(USER_MIGRATIONS)) {
      assert.equal(readFileSync(join(s.dir, "supabase", "migrations", file), "utf8"), text);
    }
    let pushed = await s.push();
    assert.ok(pushed.ok, pushed.output);
    assert.deepEqual(await tetherPresent(s), { schema: true, api: true, view: true });
    assert.deepEqual(
      await history(s),
      s.migrations().map((f) => f.slice(0, 14)),
      "one history: the shop's versions and Tether's copies, as the CLI wrote them",
    );
    const [ext] = await s.sql`select extnamespace::regnamespace::text as schema
                                from pg_extension where extname = 'pg_net'`;
    assert.equal(ext?.schema, "extensions");
    await assertShopIntact(s);
    // What deploy stores in Vault, beside a secret of the shop's own.
    await s
      .sql`select vault.create_secret('https://x.supabase.co/functions/v1', 'tether_functions_url'),
                       vault.create_secret(${"k".repeat(43)}, 'tether_invoke_key'),
                       vault.create_secret('whsec_x', 'tether_subscription_' || gen_random_uuid()),
                       vault.create_secret('shop-own-secret', 'shop_payments_key')`;

    // Installing the same Tether again changes nothing.
    assert.equal(planInstall(s.dir).files.length, 0);

    // Upgrade: a newer Tether adds exactly its new migration.
    const upgrade = planInstall(s.dir, tetherSource(newer));
    assert.deepEqual(upgrade.plan.written.map((w) => w.from), ["20990101000000_newer.sql"]);
    writePlan(s.dir, upgrade.files);
    pushed = await s.push();
    assert.ok(pushed.ok, pushed.output);
    const [table] = await s.sql`select to_regclass('tether.newer_things') is not null as ok`;
    assert.equal(table?.ok, true);

    // Uninstall must come from the Tether that is installed.
    assert.throws(() => planUninstall(s.dir), /uninstall with the same Tether/);
    const removal = planUninstall(s.dir, tetherSource(newer));
    writePlan(s.dir, removal.files);
    pushed = await s.push();
    assert.ok(pushed.ok, pushed.output);
    assert.deepEqual(await tetherPresent(s), { schema: false, api: false, view: false });
    const { functions } = publicObjects();
    const names = functions.map((f) => f.slice("public.".length, f.indexOf("(")));
    assert.ok(names.includes("start_backfill") && names.includes("refresh_tokens"));
    const [left] = await s.sql`select count(*)::int as n from pg_proc
                                where pronamespace = 'public'::regnamespace and proname in ${
      s.sql(names)
    }`;
    assert.equal(left?.n, 0, "every function of Tether's SQL API is gone");
    const vault = await s.sql`select name from vault.secrets order by name`;
    assert.deepEqual(vault.map((r) => r.name), ["shop_payments_key"], "Tether's Vault secrets go");
    await assertShopIntact(s);

    // The CLI keeps working for the shop: a migration of its own after all this pushes.
    writeFileSync(
      join(s.dir, "supabase", "migrations", "20991231000000_after.sql"),
      "alter table public.products add column price numeric;\n",
    );
    pushed = await s.push();
    assert.ok(pushed.ok, pushed.output);
    assert.deepEqual(await history(s), s.migrations().map((f) => f.slice(0, 14)));

    // And Tether can be installed again later: everything is copied afresh.
    assert.equal(planInstall(s.dir).files.length, source.migrations.length + 1);
  } finally {
    Deno.removeSync(newer, { recursive: true });
    await s.drop();
  }
});

Deno.test("install stops, naming it, when the project has a function with a Tether SQL API name", async () => {
  const s = await shop({
    "20250301000000_own_sync.sql":
      "create function public.sync_orders(batch integer) returns text language sql as $$ select 'mine' $$;",
  });
  try {
    writePlan(s.dir, planInstall(s.dir).files);
    const pushed = await s.push();
    assert.equal(pushed.ok, false);
    assert.match(
      pushed.output,
      /Tether cannot be installed: this database already has function public\.sync_orders\(batch integer\)/,
    );
    // Nothing of Tether's was applied; the shop's function is its own, untouched.
    assert.deepEqual(await tetherPresent(s), { schema: false, api: false, view: false });
    assert.deepEqual(await history(s), ["20250101000000", "20250215000000", "20250301000000"]);
    const [row] = await s.sql`select public.sync_orders(5) as mine`;
    assert.equal(row?.mine, "mine");
    await assertShopIntact(s);
  } finally {
    await s.drop();
  }
});

Deno.test("install refuses a copy whose Tether original changed (migrations are append-only)", async () => {
  const s = await shop();
  try {
    writePlan(s.dir, planInstall(s.dir).files);
    const source = tetherSource();
    const edited = {
      ...source,
      migrations: source.migrations.map((m, i) => i === 0 ? { ...m, sha256: "0".repeat(64) } : m),
    };
    assert.throws(() => planInstall(s.dir, edited), /append-only/);
  } finally {
    await s.drop();
  }
});
