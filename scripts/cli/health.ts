// One line per connection, read with SQL from tether.connection_health plus the record counts:
// shared by `npm run tether -- status` and the live view of `npm start`.
import type { Sql } from "../../functions-shared/db/client.ts";
import { providersWith } from "../../functions-shared/jobs/sync.ts";
import type { StreamName } from "../../functions-shared/providers/types.ts";

/** A message on one line (runs of whitespace, newlines included, become one space), cut at `max`. */
export function oneLine(text: string, max = Infinity): string {
  return text.replace(/\s+/g, " ").trim().slice(0, max);
}

export interface HealthRow {
  id: string;
  provider: string;
  name: string;
  external_id: string;
  status: string;
  token_expires_at: Date | null;
  last_token_refresh_at: Date | null;
  orders_last_synced_at: Date | null;
  customers_last_synced_at: Date | null;
  orders: number;
  customers: number;
  backfill_id: string | null;
  backfill_stream: string | null;
  backfill_status: string | null;
  backfill_percent: string | null;
  backfill_records_count: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
}

export async function healthRows(sql: Sql): Promise<HealthRow[]> {
  return await sql<HealthRow[]>`
    select h.id, h.provider, h.name, h.external_id, h.status, h.token_expires_at,
           h.last_token_refresh_at, h.orders_last_synced_at, h.customers_last_synced_at,
           (select count(*) from tether.orders o where o.connection_id = h.id)::int as orders,
           (select count(*) from tether.customers c where c.connection_id = h.id)::int as customers,
           h.backfill_id, h.backfill_stream, h.backfill_status, h.backfill_percent::text,
           h.backfill_records_count, h.last_error, h.next_attempt_at
      from tether.connection_health h
     order by h.provider, h.name, h.id`;
}

/** The streams a provider's adapter reads (ShipHero and Maystro: orders only). */
export function streamsOf(provider: string): StreamName[] {
  return (["orders", "customers"] as const).filter((s) =>
    (providersWith(s) as string[]).includes(provider)
  );
}

/** "in 59m", "3h 2m ago", "-". */
export function relative(at: Date | null, now = Date.now()): string {
  if (!at) return "-";
  const secs = Math.round((at.getTime() - now) / 1000);
  const abs = Math.abs(secs);
  if (abs < 3) return "just now";
  const text = abs < 60
    ? `${abs}s`
    : abs < 3600
    ? `${Math.floor(abs / 60)}m`
    : abs < 86_400
    ? `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m`
    : `${Math.floor(abs / 86_400)}d ${Math.floor((abs % 86_400) / 3600)}h`;
  return secs >= 0 ? `in ${text}` : `${text} ago`;
}

export function bar(percent: number, width = 10): string {
  const filled = Math.max(0, Math.min(width, Math.floor(percent / (100 / width))));
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/** The human columns of one row (what `status` and the live view print). */
export function displayRow(r: HealthRow, now = Date.now()): Record<string, string> {
  const streams = streamsOf(r.provider);
  const synced = (s: StreamName, at: Date | null) =>
    streams.includes(s) ? relative(at, now) : "n/a";
  const backfill = r.backfill_status
    ? `${bar(Number(r.backfill_percent ?? 0))} ${
      Number(r.backfill_percent ?? 0).toFixed(0)
    }% ${r.backfill_stream} ${r.backfill_status}`
    : "-";
  const error = r.last_error ? oneLine(r.last_error, 60) : "-";
  return {
    provider: r.provider,
    name: r.name,
    status: r.status,
    "token expires": r.token_expires_at ? relative(r.token_expires_at, now) : "never",
    "last refresh": relative(r.last_token_refresh_at, now),
    "orders synced": synced("orders", r.orders_last_synced_at),
    "customers synced": synced("customers", r.customers_last_synced_at),
    orders: r.orders.toLocaleString("en-US"),
    customers: streams.includes("customers") ? r.customers.toLocaleString("en-US") : "n/a",
    backfill: backfill,
    "last error": error,
  };
}

/** Why a connection is not healthy (empty when it is): active, no error, every stream synced. */
export function problems(r: HealthRow): string[] {
  const out: string[] = [];
  if (r.status !== "active") out.push(`status is ${r.status}`);
  if (r.last_error) out.push(`last error: ${r.last_error}`);
  for (const s of streamsOf(r.provider)) {
    const at = s === "orders" ? r.orders_last_synced_at : r.customers_last_synced_at;
    if (!at) out.push(`${s} never synced`);
  }
  return out;
}

/** A connection that cannot work until someone acts or its retries succeed. */
export interface Unhealthy {
  id: string;
  provider: string;
  name: string;
  status: string;
  last_error: string | null;
}

/** Connections (of the filter) whose status is reauth_required or error. */
export async function unhealthyConnections(
  sql: Sql,
  f: { provider?: string; connection?: string } = {},
): Promise<Unhealthy[]> {
  return await sql<Unhealthy[]>`
    select c.id::text as id, c.provider, c.name, c.status, c.last_error
      from tether.connections c
     where c.status in ('reauth_required', 'error')
       and (${f.provider ?? null}::text is null or c.provider = ${f.provider ?? null})
       and (${f.connection ?? null}::uuid is null or c.id = ${f.connection ?? null})
     order by c.provider, c.name, c.id`;
}

/** "2 connection(s) need attention:\n  shopify "Demo" (id) reauth_required: …". */
export function describeUnhealthy(rows: readonly Unhealthy[]): string {
  const lines = rows.map((r) => {
    const error = r.last_error ? `: ${oneLine(r.last_error, 120)}` : "";
    const fix = r.status === "reauth_required"
      ? " (reconnect it: npm run tether -- connect …)"
      : " (retrying with backoff)";
    return `  ${r.provider} "${r.name}" ${r.id} ${r.status}${error}${fix}`;
  });
  return `${rows.length} connection(s) failed or need reauth:\n${lines.join("\n")}`;
}
