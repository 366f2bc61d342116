// npm run tether -- <command>: the operator CLI. Functions are called with
// supabase-js `functions.invoke`, exactly as a user's app would; status is read
// with SQL. Works against the local stack by default (.tether/stack.env), or a
// real project given SUPABASE_URL, TETHER_SERVICE_KEY and DATABASE_URL.
// Exit codes: 0 done, 1 the work failed, a connection failed or needs reauth (named on stderr), or
// Tether is unreachable, 2 a usage mistake.
import { parseArgs } from "node:util";
import { runRotateKey } from "../functions-shared/jobs/rotate_key.ts";
import type { DisconnectResult } from "../functions-shared/jobs/disconnect.ts";
import type { SyncResult } from "../functions-shared/jobs/sync.ts";
import { TokenVault } from "../functions-shared/vault.ts";
import { StackError } from "./local/util.ts";
import { SandboxControl } from "./local/sandbox_control.ts";
import { coerceError } from "../functions-shared/errors.ts";
import type { ProviderName } from "../functions-shared/providers/types.ts";
import { BACKFILL_HELP, backfillCommand } from "./cli/backfill.ts";
import {
  checkChoice,
  checkProvider,
  checkUuid,
  CliError,
  fetchKeyRing,
  invoke,
  output,
  printResult,
  table,
  target,
  UsageError,
  withDb,
  withProgress,
} from "./cli/common.ts";
import {
  describeUnhealthy,
  displayRow,
  healthRows,
  oneLine,
  streamsOf,
  unhealthyConnections,
} from "./cli/health.ts";
import { SCHEDULES_HELP, schedulesCommand } from "./cli/schedules.ts";
import {
  LINK_HELP,
  linkCommand,
  ORDER_HELP,
  orderCommand,
  UNLINK_HELP,
  unlinkCommand,
} from "./cli/orders.ts";
import { NOTIFICATIONS_HELP, notificationsCommand } from "./cli/notifications.ts";
import { webhookEvents } from "./cli/activity.ts";
import {
  describePlan,
  INSTALL_HELP,
  planInstall,
  planUninstall,
  UNINSTALL_HELP,
  writePlan,
} from "./cli/install.ts";

const HELP: Record<string, string> = {
  status: "status [--provider <p>] [--json]\n" +
    "  One line per connection: provider, name, status, token expiry, last refresh, last sync\n" +
    "  per stream, records, running backfill, last error (tether.connection_health).",
  connect:
    "connect <provider> <external_id> <name> --credentials '<json>' [--config '<json>'] [--owner <uuid>] [--json]\n" +
    "  Registers (or reconnects) a connection through the connect function.\n" +
    "connect --sandbox <provider> [<name>] [--owner <uuid>] [--json]\n" +
    "  Local stack only: creates a sandbox account (seeded with 50 orders and 20 customers over\n" +
    "  30 days) and connects it, its base URLs pointing at the sandbox.",
  refresh: "refresh [--provider <p>] [--connection <uuid>] [--force] [--json]\n" +
    "  Runs the refresh-tokens function now and prints its counts.",
  sync: "sync [orders|customers|all] [--provider <p>] [--connection <uuid>] [--force] [--json]\n" +
    "  Runs the sync-orders and/or sync-customers functions now (default: all) and prints each\n" +
    "  run; --force syncs streams synced recently or backing off.",
  runs: "runs [--kind refresh|sync|backfill|webhook] [--stream orders|customers] [--status <s>]\n" +
    "     [--connection <uuid>] [--provider <p>] [--limit N] [--json]\n" +
    "  Recent run records (tether.runs), newest first; default limit 20. --kind webhook: the\n" +
    "  webhook retry sweeps (the deliveries themselves: `webhooks`).",
  webhooks:
    "webhooks [--provider <p>] [--connection <uuid>] [--status received|processed|ignored|failed]\n" +
    "         [--topic <t>] [--since <minutes>] [--limit N] [--json]\n" +
    "  Recent webhook events (tether.webhook_events), newest first; default limit 20. Payloads\n" +
    "  are never shown.",
  disconnect: "disconnect <connection uuid> [--delete-records] [--no-revoke] [--json]\n" +
    "  Ends a connection through the disconnect function: revokes the grant at the provider where\n" +
    "  it can (QuickBooks, Shopify: an uninstall), deletes its credentials, cancels its backfills,\n" +
    "  and keeps it disabled with its synced records, or deletes it and them (--delete-records).\n" +
    "  Connect it again to resume. --no-revoke leaves the grant at the provider alone.",
  backfill: BACKFILL_HELP,
  "rotate-key": "rotate-key [--batch N] [--json]\n" +
    "  Re-encrypts every stored credential with the first key of TOKEN_ENCRYPTION_KEYS. Resumable.",
  schedules: SCHEDULES_HELP,
  link: LINK_HELP,
  unlink: UNLINK_HELP,
  order: ORDER_HELP,
  notifications: NOTIFICATIONS_HELP,
  install: INSTALL_HELP,
  uninstall: UNINSTALL_HELP,
};

const GENERAL = `usage: npm run tether -- <command> [options]

Targets the local stack (.tether/stack.env) by default, or a project when SUPABASE_URL,
TETHER_SERVICE_KEY and DATABASE_URL are all set. --local or --project chooses explicitly (only
some of the three set: the local stack, saying so). Every command takes --help and --json.
Exit codes: 0 done; 1 the work failed, a connection failed or needs reauth (each is named), or
Tether is unreachable; 2 a usage mistake.
`;

function generalHelp(): string {
  return `${GENERAL}\n${
    Object.values(HELP).map((text) => `  ${text.replaceAll("\n", "\n  ")}`).join("\n\n")
  }`;
}

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  force: { type: "boolean" },
  provider: { type: "string" },
  connection: { type: "string" },
  credentials: { type: "string" },
  config: { type: "string" },
  owner: { type: "string" },
  kind: { type: "string" },
  stream: { type: "string" },
  status: { type: "string" },
  limit: { type: "string" },
  local: { type: "boolean" },
  project: { type: "boolean" },
  sandbox: { type: "boolean" },
  topic: { type: "string" },
  since: { type: "string" },
  batch: { type: "string" },
  "project-dir": { type: "string" },
  "dry-run": { type: "boolean" },
  "delete-records": { type: "boolean" },
  "no-revoke": { type: "boolean" },
  match: { type: "string" },
  "store-key": { type: "string" },
  events: { type: "string" },
  reason: { type: "string" },
} as const;

function parseJsonFlag(name: string, value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  try {
    const parsed = JSON.parse(value);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
    return parsed;
  } catch {
    throw new UsageError(
      `--${name} must be a JSON object, e.g. --${name} '{"refresh_token":"..."}'`,
    );
  }
}

function positiveInt(name: string, value: string | undefined, fallback?: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${name} must be a whole number ≥ 1, got "${value}"`);
  }
  return n;
}

let jsonMode = false;

/** A new, seeded sandbox account of the local stack, connected through the connect function. */
async function connectSandbox(
  t: Awaited<ReturnType<typeof target>>,
  provider: ProviderName,
  name: string | undefined,
  owner: string | undefined,
) {
  const sandbox = new SandboxControl(t.sandboxUrl!);
  let account;
  try {
    account = await sandbox.account(provider);
    await sandbox.call(
      "POST",
      `/data/${provider}/${encodeURIComponent(account.external_id)}/seed`,
      {
        orders: 50,
        customers: 20,
        spread_days: 30,
      },
    );
  } catch (err) {
    throw new CliError(
      `the sandboxes at ${t.sandboxUrl} did not create an account (${coerceError(err).message}): ` +
        "is the stack up? `npm run stack:up`",
    );
  }
  const data = await invoke<{ connection_id: string; name: string; provider: string }>(
    t,
    "connect",
    {
      provider,
      external_id: account.external_id,
      name: name ?? `Sandbox ${provider} ${account.external_id}`,
      credentials: account.credentials,
      config: sandbox.configFor(account),
      ...(owner ? { owner_id: owner } : {}),
    },
  );
  return { ...data, external_id: account.external_id };
}

/**
 * Refuses to rotate to a key the functions do not hold (same id and fingerprint): every value
 * re-encrypted with it would stop decrypting for them, and every connection would break.
 */
async function checkFunctionsHoldKey(
  t: Awaited<ReturnType<typeof target>>,
  vault: TokenVault,
): Promise<void> {
  const active = vault.fingerprints[0]!;
  const held = await fetchKeyRing(t);
  const theirs = held.keys.map((k) => `${k.id}${k.id === held.active_key_id ? " (active)" : ""}`);
  if (!held.keys.some((k) => k.id === active.id && k.fingerprint === active.fingerprint)) {
    const sameId = held.keys.some((k) => k.id === active.id);
    throw new CliError(
      `refusing to rotate: the functions do not hold ${
        sameId ? `the same key "${active.id}" (same id, another key)` : `key "${active.id}"`
      }, the first of TOKEN_ENCRYPTION_KEYS here; they hold ${theirs.join(", ")}. ` +
        (t.kind === "local"
          ? "The local functions use the stack's key ring (TOKEN_ENCRYPTION_KEYS in .tether/stack.env)."
          : "Set TOKEN_ENCRYPTION_KEYS on the project first (supabase secrets set), the new key " +
            "first and the old ones after it, then run rotate-key again.") +
        " Nothing was re-encrypted.",
    );
  }
}

function describeDisconnect(d: DisconnectResult): string {
  const at = {
    revoked: `the grant was revoked at ${d.provider}`,
    already_invalid: `${d.provider} already rejected its token`,
    not_supported: `${d.provider} cannot be asked to revoke it: ${d.hint}`,
    not_asked: `the grant at ${d.provider} was left alone (--no-revoke): ${d.hint}`,
    no_credentials: "it held no credentials",
  }[d.revocation];
  return `disconnected: ${d.name} (${d.provider}) ${d.connection_id}; ${at}; its records were ` +
    `${d.records}${d.records === "kept" ? " (status disabled; connect it again to resume)" : ""}.`;
}

/** Exit 1 naming every connection (of the filter) that failed or needs reauth. */
async function failIfUnhealthy(
  t: Awaited<ReturnType<typeof target>>,
  f: { provider?: string; connection?: string },
): Promise<void> {
  const bad = await withDb(t, (sql) => unhealthyConnections(sql, f));
  if (bad.length > 0) throw new CliError(describeUnhealthy(bad));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  jsonMode = rest.includes("--json");
  if (!command || command === "--help" || command === "-h" || command === "help") {
    const topic = rest[0];
    if (command === "help" && topic && topic in HELP) {
      console.log(`usage: npm run tether -- ${HELP[topic]}`);
    } else console.log(generalHelp());
    return;
  }
  if (!(command in HELP)) {
    throw new UsageError(
      `unknown command "${command}": one of ${Object.keys(HELP).join(", ")} ` +
        "(npm run tether -- --help)",
    );
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    throw new UsageError(
      `${(err as Error).message.split("\n")[0]} (npm run tether -- ${command} --help)`,
    );
  }
  const { values, positionals } = parsed;
  if (values.help) return console.log(`usage: npm run tether -- ${HELP[command]}`);
  const json = Boolean(values.json);
  const pick = () => target({ local: values.local, project: values.project, quiet: json });
  const print = (data: unknown, human: () => string) => printResult(json, data, human);
  const provider = checkProvider(values.provider);
  const connection = checkUuid(values.connection, "--connection");
  const progress = <T>(label: string, work: () => Promise<T>) => withProgress(label, json, work);
  const noPositionals = () => {
    if (positionals.length > 0) {
      throw new UsageError(`unexpected "${positionals[0]}": usage: ${HELP[command]}`);
    }
  };

  switch (command) {
    case "status": {
      noPositionals();
      const t = await pick();
      const rows = await withDb(t, (sql) => healthRows(sql));
      const shown = provider ? rows.filter((r) => r.provider === provider) : rows;
      print(
        // A provider without a customers stream has no count (the table says n/a), not 0.
        shown.map((r) => ({
          ...r,
          customers: streamsOf(r.provider).includes("customers") ? r.customers : null,
        })),
        () =>
          shown.length === 0
            ? "no connections yet: add one with `npm run tether -- connect …` (or run `npm start`)"
            : table(shown.map((r) => ({ id: r.id, ...displayRow(r) }))),
      );
      const bad = shown.filter((r) => r.status === "reauth_required" || r.status === "error");
      if (bad.length > 0) throw new CliError(describeUnhealthy(bad));
      return;
    }
    case "connect": {
      if (values.sandbox) {
        const [p, sandboxName, ...extra] = positionals;
        if (!p || extra.length > 0 || values.credentials || values.config) {
          throw new UsageError(
            "usage: npm run tether -- connect --sandbox <provider> [<name>] (no --credentials or " +
              "--config: the sandbox account supplies them)",
          );
        }
        checkProvider(p);
        checkUuid(values.owner, "--owner");
        const t = await pick();
        if (t.kind !== "local" || !t.sandboxUrl) {
          throw new UsageError("--sandbox needs the local stack (its sandboxes): drop --project");
        }
        const data = await progress(
          `creating a ${p} sandbox account and connecting it`,
          () => connectSandbox(t, p as ProviderName, sandboxName, values.owner),
        );
        print(
          data,
          () =>
            `connected: ${data.name} (${data.provider}) ${data.connection_id}, sandbox account ` +
            `${data.external_id}`,
        );
        return;
      }
      const [p, externalId, name, ...extra] = positionals;
      if (!p || !externalId || !name || extra.length > 0) {
        throw new UsageError(`usage: npm run tether -- ${HELP.connect}`);
      }
      checkProvider(p);
      checkUuid(values.owner, "--owner");
      if (values.credentials === undefined) {
        throw new UsageError(
          `--credentials is required, e.g. --credentials '{"refresh_token":"..."}'`,
        );
      }
      const body = {
        provider: p,
        external_id: externalId,
        name,
        credentials: parseJsonFlag("credentials", values.credentials),
        config: parseJsonFlag("config", values.config),
        ...(values.owner ? { owner_id: values.owner } : {}),
      };
      const t = await pick();
      const data = await progress(
        `connecting ${name}`,
        () =>
          invoke<{ connection_id: string; name: string; provider: string; status: string }>(
            t,
            "connect",
            body,
          ),
      );
      print(data, () => `connected: ${data.name} (${data.provider}) ${data.connection_id}`);
      return;
    }
    case "disconnect": {
      const [id, ...extra] = positionals;
      if (id === undefined || extra.length > 0) {
        throw new UsageError(`usage: npm run tether -- ${HELP.disconnect}`);
      }
      const connectionId = checkUuid(id, "the connection")!;
      const t = await pick();
      const data = await progress(
        "disconnecting",
        () =>
          invoke<DisconnectResult>(t, "disconnect", {
            connection_id: connectionId,
            delete_records: Boolean(values["delete-records"]),
            revoke: !values["no-revoke"],
          }),
      );
      print(data, () => describeDisconnect(data));
      return;
    }
    case "refresh": {
      noPositionals();
      const t = await pick();
      const data = await progress(
        "refreshing tokens",
        () =>
          invoke<Record<string, number>>(t, "refresh-tokens", {
            ...(provider ? { provider } : {}),
            ...(connection ? { connection_id: connection } : {}),
            ...(values.force ? { force: true } : {}),
          }),
      );
      print(data, () => table([data]));
      await failIfUnhealthy(t, { provider, connection });
      return;
    }
    case "sync": {
      const [which = "all", ...extra] = positionals;
      if (extra.length > 0) throw new UsageError(`usage: npm run tether -- ${HELP.sync}`);
      checkChoice(which, "the stream", ["orders", "customers", "all"] as const);
      const streams = which === "all" ? ["orders", "customers"] : [which];
      const t = await pick();
      const body = {
        ...(provider ? { provider } : {}),
        ...(connection ? { connection_id: connection } : {}),
        ...(values.force ? { force: true } : {}),
      };
      const answers: Record<string, SyncResult> = {};
      for (const stream of streams) {
        answers[stream] = await progress(
          `syncing ${stream}`,
          () => invoke<SyncResult>(t, `sync-${stream}`, body),
        );
      }
      print(answers, () => {
        const runs = Object.values(answers).flatMap((a) => a.runs);
        const skipped = Object.values(answers).flatMap((a) =>
          a.skipped.map((s) => ({ stream: a.stream, ...s }))
        );
        const out = [
          runs.length === 0
            ? values.force
              ? skipped.length > 0
                ? "nothing was synced: every matching connection was skipped (why is listed below)"
                : "nothing was synced: no active connection matches"
              : "nothing was due (every stream synced within its interval): add --force to sync now"
            : table(runs.map((r) => ({
              connection: r.connection_id,
              provider: r.provider,
              stream: r.stream,
              status: r.status,
              "caught up": r.caught_up ? "yes" : "no (continues next call)",
              pages: r.pages,
              added: r.added,
              updated: r.updated,
              unchanged: r.unchanged,
              error: r.error ?? null,
            }))),
        ];
        if (skipped.length > 0) out.push(`\nskipped:\n${table(skipped)}`);
        return out.join("\n");
      });
      if (Object.values(answers).some((a) => a.runs.some((r) => r.status !== "succeeded"))) {
        throw new CliError("some runs failed: see their error above, or `npm run tether -- runs`");
      }
      await failIfUnhealthy(t, { provider, connection });
      return;
    }
    case "runs": {
      noPositionals();
      const kind = checkChoice(
        values.kind,
        "--kind",
        [
          "refresh",
          "sync",
          "backfill",
          "webhook",
        ] as const,
      );
      const stream = checkChoice(values.stream, "--stream", ["orders", "customers"] as const);
      const status = checkChoice(
        values.status,
        "--status",
        [
          "running",
          "succeeded",
          "failed",
          "skipped",
        ] as const,
      );
      const limit = positiveInt("limit", values.limit, 20)!;
      const t = await pick();
      const rows = await withDb(t, (sql) =>
        sql`
          select r.id::text as id, r.connection_id, c.provider, c.name, r.kind, r.stream,
                 r.status, r.started_at, r.finished_at, r.added_count as added,
                 r.updated_count as updated, r.unchanged_count as unchanged,
                 r.pages_count as pages, r.backfill_id, r.error
            from tether.runs r left join tether.connections c on c.id = r.connection_id
           where (${connection ?? null}::uuid is null or r.connection_id = ${connection ?? null})
             and (${provider ?? null}::text is null or c.provider = ${provider ?? null})
             and (${kind ?? null}::text is null or r.kind = ${kind ?? null})
             and (${stream ?? null}::text is null or r.stream = ${stream ?? null})
             and (${status ?? null}::text is null or r.status = ${status ?? null})
           order by r.started_at desc, r.id desc limit ${limit}`);
      print(rows, () =>
        table(rows.map((r) => ({
          id: r.id,
          provider: r.provider,
          name: r.name ?? (r.kind === "webhook" ? "(retry sweep)" : null),
          kind: r.kind,
          stream: r.stream,
          status: r.status,
          started_at: r.started_at,
          added: r.added,
          updated: r.updated,
          error: r.error ? oneLine(String(r.error), 60) : null,
        }))));
      return;
    }
    case "webhooks": {
      noPositionals();
      const status = checkChoice(
        values.status,
        "--status",
        ["received", "processed", "ignored", "failed"] as const,
      );
      const limit = positiveInt("limit", values.limit, 20)!;
      const sinceMinutes = positiveInt("since", values.since);
      const t = await pick();
      const rows = await withDb(t, (sql) =>
        webhookEvents(sql, {
          provider,
          connection,
          status,
          topic: values.topic,
          sinceMinutes,
          limit,
        }));
      print(rows, () =>
        table(rows.map((r) => ({
          id: r.id,
          provider: r.provider,
          name: r.name,
          topic: r.topic,
          status: r.status,
          attempts: r.attempts,
          received_at: r.received_at,
          error: r.last_error ? oneLine(String(r.last_error), 60) : null,
        }))));
      return;
    }
    case "backfill": {
      await backfillCommand(await pick(), positionals, json);
      return;
    }
    case "schedules": {
      await schedulesCommand(await pick(), positionals, json);
      return;
    }
    case "link": {
      const opts = { match: values.match, storeKey: values["store-key"] };
      await linkCommand(await pick(), positionals, opts, json);
      return;
    }
    case "unlink": {
      await unlinkCommand(await pick(), positionals, json);
      return;
    }
    case "order": {
      await orderCommand(await pick(), positionals, connection, json);
      return;
    }
    case "notifications": {
      await notificationsCommand(await pick(), positionals, {
        limit: positiveInt("limit", values.limit, 10)!,
        events: values.events,
        owner: values.owner,
        reason: values.reason,
      }, json);
      return;
    }
    case "install":
    case "uninstall": {
      noPositionals();
      const dir = values["project-dir"];
      if (!dir) throw new UsageError(`--project-dir is required: usage: ${HELP[command]}`);
      const { plan, files } = command === "install" ? planInstall(dir) : planUninstall(dir);
      if (!values["dry-run"]) writePlan(dir, files);
      print(plan, () => describePlan(command, plan, Boolean(values["dry-run"])));
      return;
    }
    case "rotate-key": {
      noPositionals();
      const batchSize = positiveInt("batch", values.batch);
      const t = await pick();
      if (!t.keyRing) {
        throw new UsageError(
          "set TOKEN_ENCRYPTION_KEYS to the key ring, the new key first (k2:…,k1:…)",
        );
      }
      const vault = await TokenVault.fromKeyRing(t.keyRing);
      await checkFunctionsHoldKey(t, vault);
      const result = await withDb(t, (sql) =>
        runRotateKey({ db: sql, vault }, {
          batchSize,
          onProgress: (done, total) => {
            if (!json && Deno.stderr.isTerminal()) {
              Deno.stderr.writeSync(new TextEncoder().encode(`\rre-encrypting ${done}/${total}`));
            }
          },
        }));
      if (!json && Deno.stderr.isTerminal()) console.error("");
      print(
        result,
        () =>
          `re-encrypted ${result.rotated} value(s) with key ${result.active_key_id}; ${result.remaining} left on other keys`,
      );
      return;
    }
  }
}

try {
  await main(Deno.args);
} catch (err) {
  const usage = err instanceof UsageError;
  if (usage || err instanceof CliError || err instanceof StackError) {
    console.error(`tether: ${err.message}`);
    if (jsonMode && !output.printed) console.log(JSON.stringify({ error: err.message }));
    Deno.exit(usage ? 2 : 1);
  }
  // Anything else (a database refusal, a bug): one line, never a stack trace, unless asked.
  const message = err instanceof Error ? err.message : String(err);
  console.error(
    `tether: ${message}${Deno.env.get("TETHER_DEBUG") ? "" : " (TETHER_DEBUG=1 shows where)"}`,
  );
  if (Deno.env.get("TETHER_DEBUG")) console.error(err);
  if (jsonMode && !output.printed) console.log(JSON.stringify({ error: message }));
  Deno.exit(1);
}
