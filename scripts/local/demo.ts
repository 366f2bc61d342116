// The demo that `npm start` runs on the local stack: one connection per provider, registered
// through the `connect` function with supabase-js (the path a user's app takes) against a sandbox
// account seeded with orders and customers; a producer that keeps changing the sandboxes' data
// and delivering their signed webhooks; and the one full cycle of `npm start -- --once` (refresh
// all, sync every stream, a small backfill, one webhook delivery per provider), judged healthy or
// not. Status is read with SQL, the work goes through the functions.
import { createClient, FunctionsHttpError, type SupabaseClient } from "@supabase/supabase-js";
import { connect as connectDb, type Sql } from "../../functions-shared/db/client.ts";
import { type ProviderName, PROVIDERS } from "../../functions-shared/providers/types.ts";
import {
  activityProblems,
  scheduleLine,
  scheduleSummary,
  webhookLine,
  webhookSummary,
} from "../cli/activity.ts";
import { type HealthRow, healthRows, problems } from "../cli/health.ts";
import type { StackInfo } from "./stack.ts";
import { DEMO_USERS } from "../../functions-shared/console/demo_users.ts";

export const DEMO_NAMES: Record<ProviderName, string> = {
  shiphero: "Demo ShipHero",
  shopify: "Demo Shopify",
  lightspeed: "Demo Lightspeed",
  quickbooks: "Demo QuickBooks",
  maystro: "Demo Maystro",
};

export interface DemoConnection {
  id: string;
  provider: ProviderName;
  name: string;
  externalId: string;
  webhookSecret?: string;
}

interface SandboxAccount {
  provider: ProviderName;
  external_id: string;
  credentials: Record<string, string>;
  config: Record<string, string>;
}

export interface DemoOptions {
  /** Dataset seeded per account. */
  orders?: number;
  customers?: number;
  spreadDays?: number;
}

export interface WebhookOutcome {
  provider: ProviderName;
  messages: number;
  failed: number;
}

export class Demo {
  readonly db: Sql;
  readonly client: SupabaseClient;
  connections: DemoConnection[] = [];

  constructor(readonly info: StackInfo, readonly opts: DemoOptions = {}) {
    this.db = connectDb(info.DATABASE_URL, { max: 3, name: "tether-demo" });
    this.client = createClient(info.SUPABASE_URL, info.SERVICE_KEY, {
      auth: { persistSession: false },
    });
  }

  async close(): Promise<void> {
    await this.db.end({ timeout: 2 });
  }

  async #sandbox<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(`${this.info.SANDBOX_URL}/_sandbox${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox POST ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** Calls a function as a user's app does: supabase-js `functions.invoke`. */
  async invoke<T>(name: string, body: Record<string, unknown>): Promise<T> {
    const { data, error } = await this.client.functions.invoke(name, { body });
    if (error) {
      const detail = error instanceof FunctionsHttpError
        ? await (error.context as Response).json().catch(() => null) as { message?: string } | null
        : null;
      throw new Error(`${name}: ${detail?.message ?? error.message}`);
    }
    return data as T;
  }

  /**
   * One connection per provider. The sandboxes keep their accounts in memory, so the accounts
   * of an earlier start are gone and so are their tokens: earlier demo connections (the names in
   * DEMO_NAMES pointing at a local sandbox) are deleted with their records, then each provider
   * gets a new seeded sandbox account registered through `connect`. Re-registering the old rows
   * instead would keep their sync cursors, which are past most of the new account's records.
   */
  async register(): Promise<DemoConnection[]> {
    await this.db`
      delete from tether.connections
       where name in ${this.db(Object.values(DEMO_NAMES))}
         and config->>'api_base_url' like 'http://127.0.0.1:%'`;
    this.connections = await Promise.all(PROVIDERS.map((p) => this.#registerOne(p)));
    return this.connections;
  }

  async #registerOne(provider: ProviderName): Promise<DemoConnection> {
    const account = await this.#sandbox<SandboxAccount>(
      "/accounts",
      provider === "shopify" ? { provider, kind: "expiring" } : { provider },
    );
    await this.#sandbox(`/data/${provider}/${account.external_id}/seed`, {
      seed: PROVIDERS.indexOf(provider) + 1,
      orders: this.opts.orders ?? 300,
      customers: this.opts.customers ?? 150,
      spread_days: this.opts.spreadDays ?? 30,
    });
    const base = `${this.info.SANDBOX_URL}/${provider}`;
    const result = await this.invoke<{ connection_id: string }>("connect", {
      provider,
      external_id: account.external_id,
      name: DEMO_NAMES[provider],
      credentials: account.credentials,
      config: { ...account.config, auth_base_url: base, api_base_url: base },
      // The console's local demo user owns them, so signing in as demo@tether.local shows them.
      owner_id: DEMO_USERS.demo.id,
    });
    return {
      id: result.connection_id,
      provider,
      name: DEMO_NAMES[provider],
      externalId: account.external_id,
      webhookSecret: account.credentials.webhook_secret,
    };
  }

  /** New and changed orders and customers in one demo account. */
  async mutate(c: DemoConnection, changes: number): Promise<void> {
    await this.#sandbox(`/data/${c.provider}/${c.externalId}/mutate`, { changes });
  }

  /** New and changed orders and customers in every demo account; returns how many changes. */
  async produce(changes: number): Promise<number> {
    await Promise.all(this.connections.map((c) => this.mutate(c, changes)));
    return changes * this.connections.length;
  }

  /** Where the provider's webhooks for this connection go (README, "Webhooks"). */
  webhookUrl(c: DemoConnection): string {
    const hooks = `${this.info.FUNCTIONS_URL}/webhooks`;
    if (c.provider === "shiphero") return `${hooks}/shiphero/${c.id}`;
    if (c.provider === "maystro") return `${hooks}/maystro/${c.id}/${c.webhookSecret}`;
    return `${hooks}/${c.provider}`;
  }

  /** The sandbox sends the account's changes since its last delivery as signed webhooks. */
  async deliver(c: DemoConnection): Promise<WebhookOutcome> {
    const r = await this.#sandbox<{ messages: number; failed: number }>("/webhooks/deliver", {
      provider: c.provider,
      accounts: [c.externalId],
      url: this.webhookUrl(c),
    });
    return { provider: c.provider, messages: r.messages, failed: r.failed };
  }

  async refreshAll(force = true) {
    return await this.invoke<Record<string, number>>("refresh-tokens", { force });
  }

  /** Syncs one stream of every connection (forced), again while a run stopped for its budget. */
  async sync(stream: "orders" | "customers") {
    const totals = { runs: 0, failed: 0, added: 0, updated: 0 };
    for (let round = 0; round < 10; round++) {
      const r = await this.invoke<{
        runs: { status: string; caught_up: boolean; added: number; updated: number }[];
      }>(`sync-${stream}`, { force: true });
      totals.runs += r.runs.length;
      totals.failed += r.runs.filter((x) => x.status !== "succeeded").length;
      totals.added += r.runs.reduce((a, x) => a + x.added, 0);
      totals.updated += r.runs.reduce((a, x) => a + x.updated, 0);
      if (r.runs.every((x) => x.caught_up || x.status !== "succeeded")) break;
    }
    return totals;
  }

  /** Starts a backfill of the last `days` days of one stream through the backfill function. */
  async startBackfill(connectionId: string, stream: string, days: number): Promise<string> {
    const end = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000);
    const start = new Date(end.getTime() - days * 86_400_000);
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    // The first invocation works until done or out of budget, then the job continues by itself;
    // its id is in the table as soon as it exists.
    const first = this.invoke<{ backfill_id: string }>("backfill", {
      connection_id: connectionId,
      stream,
      range_start: iso(start),
      range_end: iso(end),
    });
    let failed: unknown;
    first.catch((err) => failed = err);
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      if (failed) throw failed;
      const [row] = await this.db<{ id: string }[]>`
        select id from tether.backfills
         where connection_id = ${connectionId} and stream = ${stream}
           and range_start = ${start} and range_end = ${end}
         order by created_at desc limit 1`;
      if (row) return row.id;
      await new Promise((r) => setTimeout(r, 200));
    }
    return (await first).backfill_id;
  }

  async backfillState(id: string) {
    const [row] = await this.db<
      { status: string; records_count: number; windows_done: number; last_error: string | null }[]
    >`select status, records_count, windows_done, last_error from tether.backfills where id = ${id}`;
    return row;
  }

  async health(): Promise<HealthRow[]> {
    return await healthRows(this.db);
  }

  /** The one-line summaries of the schedules and the webhook events, and their problems. */
  async activityReport(): Promise<{ lines: string[]; problems: string[] }> {
    const [schedules, webhooks] = await Promise.all([
      scheduleSummary(this.db),
      webhookSummary(this.db),
    ]);
    return {
      lines: [scheduleLine(schedules), webhookLine(webhooks)],
      problems: activityProblems(schedules, webhooks),
    };
  }

  async activity(): Promise<string[]> {
    return (await this.activityReport()).lines;
  }
}

export interface OnceReport {
  ok: boolean;
  problems: string[];
  rows: HealthRow[];
  /** The schedules and webhook events, one line each (as the live view shows them). */
  activity: string[];
}

async function timed<T>(
  say: (line: string) => void,
  label: string,
  work: () => Promise<T>,
  summary: (value: T) => string,
): Promise<T> {
  const started = Date.now();
  const value = await work();
  say(`  ${label.padEnd(36)} ${summary(value)} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return value;
}

/**
 * The full cycle of `npm start -- --once`, after `register()`: refresh all (forced), sync every
 * stream (forced), a 3-day backfill of the Shopify demo's orders (waited for), one signed webhook
 * delivery per provider (waited for until processed). Healthy means: every connection active with
 * no last error and every stream synced, the backfill succeeded, every webhook event processed.
 */
export async function runOnce(demo: Demo, say: (line: string) => void): Promise<OnceReport> {
  const found: string[] = [];
  const cycleStart = new Date();
  const fmt = (n: number) => n.toLocaleString("en-US");

  await timed(
    say,
    "refresh-tokens (force)",
    () => demo.refreshAll(true),
    (r) =>
      Object.entries(r).filter(([k]) => k !== "duration_ms").map(([k, v]) => `${k} ${v}`).join(
        ", ",
      ),
  );
  for (const stream of ["orders", "customers"] as const) {
    const t = await timed(
      say,
      `sync-${stream} (force)`,
      () => demo.sync(stream),
      (t) =>
        `${t.runs} runs, ${t.failed} failed, +${fmt(t.added)} added, ${fmt(t.updated)} updated`,
    );
    if (t.failed > 0) found.push(`sync-${stream}: ${t.failed} run(s) failed`);
  }

  const shopify = demo.connections.find((c) => c.provider === "shopify");
  if (shopify) {
    await timed(say, "backfill: Demo Shopify, 3 days", async () => {
      const id = await demo.startBackfill(shopify.id, "orders", 3);
      for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
        const row = await demo.backfillState(id);
        if (row && !["pending", "running"].includes(row.status)) return { id, ...row };
        await new Promise((r) => setTimeout(r, 500));
      }
      return { id, status: "timed out", records_count: 0, windows_done: 0, last_error: null };
    }, (b) => {
      if (b.status !== "succeeded") {
        found.push(`backfill ${b.id}: ${b.status}${b.last_error ? ` (${b.last_error})` : ""}`);
      }
      return `${b.status}, ${b.windows_done} windows, ${fmt(b.records_count)} records`;
    });
  }

  await timed(say, "webhooks: one delivery per provider", async () => {
    const outcomes: WebhookOutcome[] = [];
    for (const c of demo.connections) {
      // ShipHero sends webhooks for shipments and cancellations only: change until one comes.
      let outcome: WebhookOutcome = { provider: c.provider, messages: 0, failed: 0 };
      for (let i = 0; i < 10 && outcome.messages === 0; i++) {
        await demo.mutate(c, 4);
        outcome = await demo.deliver(c);
      }
      outcomes.push(outcome);
      if (outcome.messages === 0) found.push(`webhooks: ${c.provider} sent nothing`);
      if (outcome.failed > 0) found.push(`webhooks: ${c.provider} ${outcome.failed} refused`);
    }
    return outcomes;
  }, (o) => o.map((x) => `${x.provider} ${x.messages}`).join(", "));

  // Every event of this cycle processed; a failed one is retried as process_webhook_events() does.
  const ids = demo.connections.map((c) => c.id);
  const events = async () =>
    await demo.db<{ status: string; n: number; error: string | null }[]>`
      select status, count(*)::int as n, max(last_error) as error from tether.webhook_events
       where connection_id in ${demo.db(ids)} and received_at >= ${cycleStart}
       group by status`;
  let counts = await events();
  for (let i = 0; i < 20 && counts.some((e) => e.status !== "processed"); i++) {
    if (counts.some((e) => e.status === "failed")) {
      await demo.invoke("webhooks/_sweep", { force: true }).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 500));
    counts = await events();
  }
  for (const e of counts.filter((e) => e.status !== "processed")) {
    found.push(`webhooks: ${e.n} event(s) ${e.status}${e.error ? ` (${e.error})` : ""}`);
  }
  say(
    `  ${"webhook events".padEnd(36)} ${
      counts.map((e) => `${e.n} ${e.status}`).join(", ") || "none"
    }`,
  );

  const rows = await demo.health();
  for (const r of rows) {
    for (const p of problems(r)) found.push(`${r.name} (${r.provider}): ${p}`);
  }
  if (rows.length === 0) found.push("no connections");
  const activity = await demo.activityReport();
  found.push(...activity.problems);
  return { ok: found.length === 0, problems: found, rows, activity: activity.lines };
}
