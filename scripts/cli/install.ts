// `npm run tether -- install|uninstall --project-dir <dir>`: Tether inside a Supabase project that
// already has its own supabase/migrations.
//
// The Supabase CLI keeps one linear migration history per project
// (supabase_migrations.schema_migrations) and `supabase db push` refuses a remote history that the
// local directory does not hold ("Remote migration versions not found in local migrations
// directory"). So Tether never pushes its own directory into a shop's project: `install` copies
// Tether's migrations into the shop's supabase/migrations, each under a fresh timestamp after the
// shop's latest, with a header naming the Tether file, its sha256 and the Tether version. The
// shop's own `supabase db push` applies them like any other migration: one history, one writer,
// and `supabase db reset` or a preview branch rebuilds Tether too.
//
// - Install on a project without Tether first writes a preflight migration that stops the push,
//   naming them, when the database already has functions or views with the names of Tether's SQL
//   API (refresh_tokens, sync_orders, start_backfill, …, tether_* views) or a `tether` schema:
//   Tether's objects never replace or overload a shop's own.
// - Upgrade is the same command from a newer Tether: only the migrations not yet copied are added.
//   A copied file whose Tether original changed is an error (Tether's migrations are append-only).
// - Uninstall writes one migration that unschedules Tether's cron jobs, deletes its Vault secrets,
//   drops its functions and views in `public` by exact signature and then schema `tether`; it stops
//   instead when an object of the shop's own depends on Tether's tables. Extensions stay.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { paths } from "../local/util.ts";
import { CliError, UsageError } from "./common.ts";

export const INSTALL_HELP = "install --project-dir <dir> [--dry-run] [--json]\n" +
  "  Copies Tether's migrations into <dir>/supabase/migrations (fresh timestamps, after the\n" +
  "  project's own), or the ones a newer Tether adds; then run `supabase db push` there.";
export const UNINSTALL_HELP = "uninstall --project-dir <dir> [--dry-run] [--json]\n" +
  "  Writes the migration that removes Tether's schema, SQL API, views, cron jobs and Vault\n" +
  "  secrets from the project, leaving everything else; then run `supabase db push` there.";

const MIGRATION_FILE = /^(\d+)_(.+)\.sql$/;
const COPY_HEADER = /^-- tether-migration: (\S+) sha256:([0-9a-f]{64}) tether:(\S+)$/m;
const UNINSTALL_HEADER = /^-- tether-uninstall: tether:(\S+)$/m;

export interface TetherSource {
  /** The Tether checkout the migrations come from. */
  root: string;
  version: string;
  migrations: { file: string; sha256: string; text: string }[];
}

export function tetherSource(root = paths.root): TetherSource {
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version as string;
  const dir = join(root, "supabase", "migrations");
  const migrations = readdirSync(dir).filter((f) => MIGRATION_FILE.test(f)).sort().map((file) => {
    const text = readFileSync(join(dir, file), "utf8");
    return { file, text, sha256: createHash("sha256").update(text).digest("hex") };
  });
  return { root, version, migrations };
}

interface ProjectState {
  dir: string;
  /** Every migration version in the project, Tether's copies included. */
  versions: string[];
  /** Tether files copied since the last uninstall: source file → copy. */
  copies: Map<string, { file: string; sha256: string; version: string }>;
}

function projectState(projectDir: string): ProjectState {
  const dir = join(projectDir, "supabase", "migrations");
  if (!existsSync(join(projectDir, "supabase"))) {
    throw new UsageError(
      `${projectDir} has no supabase/ directory: point --project-dir at the project's root ` +
        "(where `supabase init` put supabase/config.toml)",
    );
  }
  const files = existsSync(dir)
    ? readdirSync(dir).filter((f) => MIGRATION_FILE.test(f)).sort()
    : [];
  const copies = new Map<string, { file: string; sha256: string; version: string }>();
  for (const file of files) {
    const head = readFileSync(join(dir, file), "utf8").slice(0, 1000);
    if (UNINSTALL_HEADER.test(head)) copies.clear();
    const copy = COPY_HEADER.exec(head);
    if (copy) copies.set(copy[1]!, { file, sha256: copy[2]!, version: copy[3]! });
  }
  return { dir, versions: files.map((f) => MIGRATION_FILE.exec(f)![1]!), copies };
}

/** YYYYMMDDHHMMSS of `now` (UTC), or one past the latest existing version if that is later. */
function versionsAfter(existing: string[], now: Date, count: number): string[] {
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  let next = BigInt(stamp);
  for (const v of existing) if (BigInt(v) >= next) next = BigInt(v) + 1n;
  return Array.from({ length: count }, (_, i) => String(next + BigInt(i)));
}

/** Tether's objects in `public`, by exact signature, from the dumped schema (supabase/schema.sql). */
export function publicObjects(root = paths.root): { functions: string[]; views: string[] } {
  const schema = readFileSync(join(root, "supabase", "schema.sql"), "utf8");
  const functions = [...schema.matchAll(/^CREATE FUNCTION public\.(\w+)\((.*)\) RETURNS /gm)].map(
    ([, name, args]) => {
      const types = args!.split(/,\s*/).filter((a) => a.trim() !== "").map((arg) =>
        arg.replace(/\s+DEFAULT\s+.*$/i, "").trim()
      );
      return `public.${name}(${types.join(", ")})`;
    },
  );
  const views = [...schema.matchAll(/^CREATE VIEW public\.(\w+)/gm)].map(([, n]) => `public.${n}`);
  return { functions, views };
}

const header = (lines: string[]) => lines.map((l) => `-- ${l}`).join("\n") + "\n";

function preflightSql(source: TetherSource): string {
  const { functions, views } = publicObjects(source.root);
  const names = [...new Set(functions.map((f) => f.slice("public.".length, f.indexOf("("))))];
  const viewNames = views.map((v) => v.slice("public.".length));
  const list = (items: string[]) => items.map((i) => `'${i}'`).join(", ");
  return header([
    `tether-preflight: tether:${source.version}`,
    "Written by `npm run tether -- install`: stops this push, naming them, if the database already",
    "has objects with the names of Tether's SQL API or a schema `tether`, so that Tether never",
    "replaces or overloads a function of yours. Rename yours (or uninstall an earlier Tether),",
    "then push again.",
  ]) + `
do $$
declare
  taken text;
begin
  select string_agg(format('%s', what), ', ' order by what) into taken
    from (
      select format('function public.%s(%s)', p.proname, pg_get_function_identity_arguments(p.oid))
               as what
        from pg_proc p
       where p.pronamespace = 'public'::regnamespace and p.proname in (${list(names)})
      union all
      select format('view or table public.%s', c.relname)
        from pg_class c
       where c.relnamespace = 'public'::regnamespace and c.relname in (${list(viewNames)})
      union all
      select 'schema tether' from pg_namespace where nspname = 'tether'
    ) existing;
  if taken is not null then
    raise exception 'Tether cannot be installed: this database already has %', taken
      using hint = 'Tether''s SQL API and views use these names in public. Rename yours, or remove '
                || 'an earlier Tether with npm run tether -- uninstall, then run supabase db push again.';
  end if;
end
$$;
`;
}

function uninstallSql(source: TetherSource): string {
  const { functions, views } = publicObjects(source.root);
  const viewNames = views.map((v) => `'${v.slice("public.".length)}'`).join(", ");
  return header([
    `tether-uninstall: tether:${source.version}`,
    "Written by `npm run tether -- uninstall`: removes Tether (its cron jobs in this database, its",
    "Vault secrets, its SQL API and views in public, schema tether) and nothing else. It stops,",
    "changing nothing, if an object of yours depends on Tether's tables. Extensions stay enabled.",
  ]) + `
do $$
declare
  dependents text;
begin
  select string_agg(distinct what, ', ') into dependents from (
    select format('view %s', v.oid::regclass) as what
      from pg_depend d
      join pg_rewrite r on d.classid = 'pg_rewrite'::regclass and r.oid = d.objid
      join pg_class v on v.oid = r.ev_class
      join pg_class t on d.refclassid = 'pg_class'::regclass and t.oid = d.refobjid
     where t.relnamespace = 'tether'::regnamespace
       and v.relnamespace <> 'tether'::regnamespace
       and not (v.relnamespace = 'public'::regnamespace and v.relname in (${viewNames}))
    union all
    select format('foreign key %s on %s', c.conname, c.conrelid::regclass)
      from pg_constraint c
      join pg_class t on t.oid = c.confrelid
     where c.contype = 'f' and t.relnamespace = 'tether'::regnamespace
       and c.connamespace <> 'tether'::regnamespace
  ) found;
  if dependents is not null then
    raise exception 'Tether was not uninstalled: % of yours depend on Tether''s tables', dependents
      using hint = 'Drop or change them, then run supabase db push again.';
  end if;
end
$$;

do $$
begin
  if to_regclass('cron.job') is not null then
    execute $q$select cron.unschedule(jobid) from cron.job
                where jobname like 'tether-%' and database = current_database()$q$;
  end if;
  if to_regclass('vault.secrets') is not null then
    -- tether_service_key: what Tether before its invoke key stored (see the invoke_key migration).
    -- tether_subscription_<id>: the notification subscribers' signing secrets.
    delete from vault.secrets
     where name in ('tether_functions_url', 'tether_invoke_key', 'tether_service_key')
        or name like 'tether\\_subscription\\_%';
  end if;
end
$$;

${views.map((v) => `drop view if exists ${v};`).join("\n")}
${functions.map((f) => `drop function if exists ${f};`).join("\n")}
drop schema if exists tether cascade;
`;
}

export interface InstallPlan {
  project: string;
  tether_version: string;
  /** Files written (or, with --dry-run, that would be). */
  written: { file: string; from: string }[];
  /** Tether migrations already in the project. */
  already: number;
}

/** install: the copies (and, on a project without Tether, the preflight) to add. */
export function planInstall(
  projectDir: string,
  source = tetherSource(),
  now = new Date(),
): { plan: InstallPlan; files: { file: string; text: string }[] } {
  const state = projectState(projectDir);
  const problems: string[] = [];
  for (const [from, copy] of state.copies) {
    const original = source.migrations.find((m) => m.file === from);
    if (!original) {
      problems.push(
        `${copy.file} is Tether's ${from} (tether ${copy.version}), which this Tether ` +
          `(${source.version}) does not have: install from that Tether or a newer one`,
      );
    } else if (original.sha256 !== copy.sha256) {
      problems.push(
        `${copy.file} was copied from a different ${from} than this Tether's: Tether's ` +
          "migrations are append-only, so one of the two checkouts is not a released Tether",
      );
    }
  }
  if (problems.length > 0) throw new CliError(problems.join("\n"));
  const pending = source.migrations.filter((m) => !state.copies.has(m.file));
  const fresh = state.copies.size === 0;
  const versions = versionsAfter(state.versions, now, pending.length + (fresh ? 1 : 0));
  const files: { file: string; text: string }[] = [];
  const written: InstallPlan["written"] = [];
  if (fresh && pending.length > 0) {
    const file = `${versions.shift()}_tether_preflight.sql`;
    files.push({ file, text: preflightSql(source) });
    written.push({ file, from: "(preflight: name collisions)" });
  }
  for (const m of pending) {
    const name = MIGRATION_FILE.exec(m.file)![2]!;
    const file = `${versions.shift()}_tether_${name.replace(/^tether_/, "")}.sql`;
    files.push({
      file,
      text: header([
        `tether-migration: ${m.file} sha256:${m.sha256} tether:${source.version}`,
        "Copied from Tether by `npm run tether -- install`; do not edit. A newer Tether's install",
        "adds its new migrations after this one; `npm run tether -- uninstall` removes Tether.",
      ]) + "\n" + m.text,
    });
    written.push({ file, from: m.file });
  }
  return {
    plan: {
      project: projectDir,
      tether_version: source.version,
      written,
      already: state.copies.size,
    },
    files,
  };
}

/** uninstall: the one migration that removes Tether. */
export function planUninstall(
  projectDir: string,
  source = tetherSource(),
  now = new Date(),
): { plan: InstallPlan; files: { file: string; text: string }[] } {
  const state = projectState(projectDir);
  if (state.copies.size === 0) {
    throw new CliError(
      `${projectDir}/supabase/migrations has no Tether migrations (after the last uninstall): ` +
        "nothing to uninstall",
    );
  }
  const missing = source.migrations.filter((m) => !state.copies.has(m.file));
  const newer = [...state.copies.keys()].filter((f) =>
    !source.migrations.some((m) => m.file === f)
  );
  if (missing.length > 0 || newer.length > 0) {
    throw new CliError(
      `the project has Tether ${[...state.copies.values()][0]!.version}'s migrations, this is ` +
        `Tether ${source.version}: uninstall with the same Tether (or install this one first), ` +
        "so that every object it drops is one it created",
    );
  }
  const [version] = versionsAfter(state.versions, now, 1);
  const file = `${version}_tether_uninstall.sql`;
  return {
    plan: {
      project: projectDir,
      tether_version: source.version,
      written: [{ file, from: "(uninstall)" }],
      already: state.copies.size,
    },
    files: [{ file, text: uninstallSql(source) }],
  };
}

/** Writes the planned files into the project's supabase/migrations. */
export function writePlan(projectDir: string, files: { file: string; text: string }[]): void {
  const dir = join(projectDir, "supabase", "migrations");
  Deno.mkdirSync(dir, { recursive: true });
  for (const { file, text } of files) writeFileSync(join(dir, file), text, { flag: "wx" });
}

export function describePlan(kind: "install" | "uninstall", plan: InstallPlan, dryRun: boolean) {
  const verb = dryRun ? "would write" : "wrote";
  if (plan.written.length === 0) {
    return `Tether ${plan.tether_version}: all ${plan.already} migrations are already in ` +
      `${plan.project}/supabase/migrations; nothing to do.`;
  }
  const lines = plan.written.map((w) => `  ${w.file}  ${w.from}`);
  return [
    `Tether ${plan.tether_version} ${kind}: ${verb} ${plan.written.length} migration(s) into ` +
    `${plan.project}/supabase/migrations:`,
    ...lines,
    dryRun ? "" : `Apply them with the project's own: (cd ${plan.project} && supabase db push)`,
  ].filter((l) => l !== "").join("\n");
}
