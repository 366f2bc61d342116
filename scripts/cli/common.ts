// What every CLI command shares: where Tether is (the local stack or a real project), calling
// a function the way a user's app does (supabase-js `functions.invoke`), the database, errors
// that say what to do, tables, and a progress display on stderr.
import { createClient, FunctionsFetchError, FunctionsHttpError } from "@supabase/supabase-js";
import { connect as connectDb, type Sql } from "../../functions-shared/db/client.ts";
import { PROVIDERS } from "../../functions-shared/providers/types.ts";
import { readStackEnv } from "../local/stack.ts";

export interface Target {
  supabaseUrl: string;
  serviceKey: string;
  databaseUrl: string;
  keyRing?: string;
  /** The local stack's provider sandboxes (connect --sandbox). */
  sandboxUrl?: string;
  /** "local" (the stack in .tether/) or "project" (SUPABASE_URL, TETHER_SERVICE_KEY, DATABASE_URL). */
  kind: "local" | "project";
}

/** A mistake in the command line: exit 2 with the usage hint. */
export class UsageError extends Error {}
/** The command could not do its work (stack down, refused, failed): exit 1. */
export class CliError extends Error {}

const STACK_DOWN =
  "the local stack is not up: run `npm run stack:up` (or `npm start`) first, or point the CLI at a " +
  "project with SUPABASE_URL, TETHER_SERVICE_KEY and DATABASE_URL (--project)";

const PROJECT_VARS = ["SUPABASE_URL", "TETHER_SERVICE_KEY", "DATABASE_URL"] as const;

/**
 * Where the command goes. `--local`: the stack in .tether/, whatever is exported. `--project`: the
 * project that SUPABASE_URL, TETHER_SERVICE_KEY and DATABASE_URL name (all three required).
 * Neither: the project when all three are set, else the local stack; when only some are set (a
 * shell that exports DATABASE_URL for something else), the local stack, saying so on stderr.
 */
export async function target(
  choice: { local?: boolean; project?: boolean; quiet?: boolean } = {},
): Promise<Target> {
  const env = Deno.env.toObject();
  if (choice.local && choice.project) {
    throw new UsageError("--local and --project exclude each other: choose one");
  }
  const given = PROJECT_VARS.filter((n) => env[n]);
  const missing = PROJECT_VARS.filter((n) => !env[n]);
  if (choice.project || (!choice.local && given.length === 3)) {
    if (missing.length > 0) {
      throw new UsageError(
        `--project needs SUPABASE_URL, TETHER_SERVICE_KEY and DATABASE_URL (missing: ${
          missing.join(", ")
        }); or use --local for the local stack`,
      );
    }
    return {
      supabaseUrl: env.SUPABASE_URL!,
      serviceKey: env.TETHER_SERVICE_KEY!,
      databaseUrl: env.DATABASE_URL!,
      keyRing: env.TOKEN_ENCRYPTION_KEYS,
      kind: "project",
    };
  }
  const why = choice.local
    ? "--local"
    : given.length > 0
    ? `${given.join(" and ")} ${given.length === 1 ? "is" : "are"} set, but not ${
      missing.join(" or ")
    }; set all three (or pass --project) to use a project`
    : undefined;
  if (why !== undefined && given.length > 0 && !choice.quiet) {
    console.error(`tether: using the local stack (${why})`);
  }
  const stack = await readStackEnv().catch(() => {
    throw new CliError(
      why === undefined || given.length === 0 ? STACK_DOWN : `${STACK_DOWN} (chose it: ${why})`,
    );
  });
  return {
    supabaseUrl: stack.SUPABASE_URL,
    serviceKey: stack.SERVICE_KEY,
    databaseUrl: stack.DATABASE_URL,
    keyRing: env.TOKEN_ENCRYPTION_KEYS ?? stack.TOKEN_ENCRYPTION_KEYS,
    sandboxUrl: stack.SANDBOX_URL,
    kind: "local",
  };
}

function unreachable(t: Target, what: string): string {
  return t.kind === "local"
    ? `${what} is not answering: ${STACK_DOWN}`
    : `${what} is not answering: check the URL and that the project is up`;
}

/** Calls a function with supabase-js, as a user's app does; a refusal becomes a CliError. */
export async function invoke<T = Record<string, unknown>>(
  t: Target,
  name: string,
  body: Record<string, unknown>,
): Promise<T> {
  const client = createClient(t.supabaseUrl, t.serviceKey, { auth: { persistSession: false } });
  const { data, error } = await client.functions.invoke(name, { body });
  if (!error) return data as T;
  if (error instanceof FunctionsFetchError) {
    throw new CliError(unreachable(t, `the ${name} function at ${t.supabaseUrl}`));
  }
  if (error instanceof FunctionsHttpError) {
    const res = error.context as Response;
    const detail = await res.json().catch(() => null) as { message?: string } | null;
    if (res.status === 401 || res.status === 403) {
      throw new CliError(
        `${name}: the key was refused (HTTP ${res.status}): ` +
          (t.kind === "local"
            ? "the stack's key changed; restart it with `npm run stack:down && npm run stack:up`"
            : "set TETHER_SERVICE_KEY to the project's secret key (Settings → API keys)"),
      );
    }
    throw new CliError(`${name}: ${detail?.message ?? `HTTP ${res.status}`}`);
  }
  throw new CliError(`${name}: ${error.message}`);
}

/** The key ring the functions hold (ids and fingerprints): GET connect/_key_ring. */
export async function fetchKeyRing(
  t: Target,
): Promise<{ active_key_id: string; keys: { id: string; fingerprint: string }[] }> {
  const url = `${t.supabaseUrl}/functions/v1/connect/_key_ring`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { apikey: t.serviceKey } });
  } catch {
    throw new CliError(unreachable(t, `the connect function at ${t.supabaseUrl}`));
  }
  const body = await res.json().catch(() => null);
  if (!res.ok || typeof body?.active_key_id !== "string" || !Array.isArray(body?.keys)) {
    throw new CliError(
      `could not read the functions' key ring (HTTP ${res.status} from ${url}): deploy the ` +
        "current functions first; nothing was re-encrypted",
    );
  }
  return body;
}

/** Runs `fn` with a database connection; an unreachable database says what to do. */
export async function withDb<T>(t: Target, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = connectDb(t.databaseUrl, { max: 2, name: "tether-cli" });
  try {
    return await fn(sql);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "CONNECT_TIMEOUT" || code === "ENOTFOUND") {
      throw new CliError(unreachable(t, "the database"));
    }
    if (code === "3F000" || code === "42P01") {
      throw new CliError(
        `the database has no Tether schema (${(err as Error).message}): apply the migrations ` +
          "(`supabase db push`), or use the local stack",
      );
    }
    throw err;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkUuid(
  value: string | undefined,
  what: string,
  listedBy = "status",
): string | undefined {
  if (value !== undefined && !UUID.test(value)) {
    throw new UsageError(
      `${what} must be a uuid, got "${value}"; list the ids with \`npm run tether -- ${listedBy}\``,
    );
  }
  return value;
}

export function checkProvider(value: string | undefined): string | undefined {
  if (value !== undefined && !(PROVIDERS as readonly string[]).includes(value)) {
    throw new UsageError(`unknown provider "${value}": one of ${PROVIDERS.join(", ")}`);
  }
  return value;
}

export function checkChoice<T extends string>(
  value: string | undefined,
  what: string,
  choices: readonly T[],
): T | undefined {
  if (value !== undefined && !(choices as readonly string[]).includes(value)) {
    throw new UsageError(`${what} must be one of ${choices.join(", ")}, got "${value}"`);
  }
  return value as T | undefined;
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (v instanceof Date) return v.toISOString().replace(/\.\d{3}Z$/, "Z");
  return String(v);
}

/** A plain text table with a header row. */
export function table(rows: Record<string, unknown>[], cols?: string[]): string {
  if (rows.length === 0) return "(none)";
  const names = cols ?? Object.keys(rows[0]!);
  const widths = names.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [
    line(names),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map((r) => line(names.map((c) => cell(r[c])))),
  ].join("\n");
}

/** Whether a command printed its result (then a later failure adds no second JSON document). */
export const output = { printed: false };

export function printResult(json: boolean, data: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(data, null, 2) : human());
  output.printed = true;
}

const enc = new TextEncoder();

/**
 * Shows `label` with a spinner on stderr while `work` runs, once it has taken more than a second
 * (a single "label... done" line when stderr is not a terminal). Silent when `quiet` (--json).
 */
export async function withProgress<T>(
  label: string,
  quiet: boolean,
  work: () => Promise<T>,
): Promise<T> {
  if (quiet) return await work();
  const started = Date.now();
  const tty = Deno.stderr.isTerminal();
  const frames = ["|", "/", "-", "\\"];
  let frame = 0;
  let shown = false;
  const timer = setInterval(() => {
    if (Date.now() - started < 1000) return;
    shown = true;
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    if (tty) Deno.stderr.writeSync(enc.encode(`\r${frames[frame++ % 4]} ${label}... ${secs} s `));
  }, 120);
  let outcome = "done";
  try {
    return await work();
  } catch (err) {
    outcome = "failed";
    throw err;
  } finally {
    clearInterval(timer);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (shown || Date.now() - started >= 1000) {
      Deno.stderr.writeSync(
        enc.encode(`${tty ? "\r\x1b[K" : ""}${label}... ${outcome} (${secs} s)\n`),
      );
    }
  }
}
