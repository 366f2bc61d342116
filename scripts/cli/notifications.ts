// `npm run tether -- notifications [list|subscribe|enable|disable|delete|deliver]`: the
// notification subscribers and their recent deliveries, through the SQL API of the
// notifications migration (tether.subscribe, tether.list_subscriptions, …).
import type { Sql } from "../../functions-shared/db/client.ts";
import {
  checkUuid,
  CliError,
  printResult,
  table,
  type Target,
  UsageError,
  withDb,
} from "./common.ts";
import { oneLine } from "./health.ts";

export const NOTIFICATIONS_HELP = "notifications [list] [--limit N] [--json]\n" +
  "  The subscribers (enabled or why not, failing since, deliveries of the last day) and the\n" +
  "  latest delivery attempts.\n" +
  "notifications subscribe <url> [--events t1,t2] [--owner uuid]  prints the secret, once\n" +
  "notifications enable|delete <id> | disable <id> [--reason text]\n" +
  "notifications deliver   runs the dispatcher now (what pg_cron runs every minute)";

interface Options {
  limit: number;
  events?: string;
  owner?: string;
  reason?: string;
}

async function listing(sql: Sql, limit: number) {
  const subscriptions = await sql`select * from tether.list_subscriptions()`;
  const deliveries = await sql`select * from tether.recent_deliveries(null, ${limit})`;
  return { subscriptions, deliveries };
}

function describeListing(l: Awaited<ReturnType<typeof listing>>): string {
  if (l.subscriptions.length === 0) {
    return "No subscribers: npm run tether -- notifications subscribe <url>";
  }
  const subs = table(l.subscriptions.map((s) => ({
    id: s.id,
    url: s.url,
    events: (s.event_types as string[]).join(","),
    enabled: s.enabled ? "yes" : `NO: ${oneLine(String(s.disabled_reason), 60)}`,
    "failing since": s.failing_since,
    "ok 24h": s.delivered_24h,
    "failed 24h": s.failed_24h,
    pending: s.scheduled,
  })));
  if (l.deliveries.length === 0) return `${subs}\n\nNo deliveries yet.`;
  const recent = table(l.deliveries.map((d) => ({
    id: d.id,
    subscription: String(d.subscription_id).slice(0, 8),
    type: d.type,
    "webhook-id": d.message_id,
    attempt: d.attempt,
    status: d.status,
    code: d.status_code,
    sent: d.sent_at,
    "next attempt": d.next_attempt_at,
    error: d.error ? oneLine(String(d.error), 50) : null,
  })));
  return `${subs}\n\nLatest deliveries:\n${recent}`;
}

export async function notificationsCommand(
  t: Target,
  args: string[],
  opts: Options,
  json: boolean,
): Promise<void> {
  const [sub = "list", arg, ...extra] = args;
  const usage = `usage: npm run tether -- ${NOTIFICATIONS_HELP}`;
  if (extra.length > 0) throw new UsageError(usage);
  const needsArg = ["subscribe", "enable", "disable", "delete"].includes(sub);
  if (needsArg !== (arg !== undefined)) throw new UsageError(usage);
  await withDb(t, async (sql) => {
    switch (sub) {
      case "list": {
        const l = await listing(sql, opts.limit);
        return printResult(json, l, () => describeListing(l));
      }
      case "subscribe": {
        const events = opts.events?.split(",").map((e) => e.trim()).filter((e) => e !== "");
        checkUuid(opts.owner, "--owner");
        const [row] = await sql<{ subscription_id: string; secret: string }[]>`
          select * from tether.subscribe(${arg!}, ${events ?? null}, ${opts.owner ?? null})`;
        return printResult(json, row, () =>
          `subscribed ${arg} as ${row!.subscription_id}\n` +
          `signing secret (shown this once; kept in Vault): ${row!.secret}`);
      }
      case "enable":
      case "disable": {
        checkUuid(arg, "the subscription id", "notifications");
        const enable = sub === "enable";
        await sql`select tether.set_subscription_enabled(${arg!}, ${enable},
                                                          ${opts.reason ?? null})`;
        return printResult(json, { id: arg, enabled: enable }, () => `${sub}d ${arg}`);
      }
      case "delete": {
        checkUuid(arg, "the subscription id", "notifications");
        const [row] = await sql<
          { ok: boolean }[]
        >`select tether.delete_subscription(${arg!}) as ok`;
        if (!row!.ok) throw new CliError(`no subscription ${arg}`);
        return printResult(json, { id: arg, deleted: true }, () => `deleted ${arg}`);
      }
      case "deliver": {
        const [row] = await sql<{ r: Record<string, number> }[]>`
          select tether.deliver_notifications() as r`;
        return printResult(
          json,
          row!.r,
          () => Object.entries(row!.r).map(([k, v]) => `${k} ${v}`).join(", "),
        );
      }
      default:
        throw new UsageError(`unknown notifications command "${sub}": ${usage}`);
    }
  });
}
