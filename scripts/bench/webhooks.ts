// bench webhooks (see main.ts): 2,000 signed Shopify deliveries, some repeated, sent 16 at a time
// to the served webhooks function; then QuickBooks notifications while each re-fetch their
// processing makes takes 2 s at the sandbox: how long the answer takes (it must not include the
// re-fetch: QuickBooks wants an answer within 3 s, Shopify and Lightspeed within 5 s).
import type { Deps } from "../../functions-shared/deps.ts";
import type { SandboxControl } from "../local/sandbox_control.ts";
import { type TestDatabase, testDeps, webhookEventsSettled } from "../local/harness.ts";
import { inParallel } from "./measure.ts";
import { type CaseResult, round } from "./report.ts";
import { type BenchWorld, type GatewayFigures, withBenchWorld } from "./world.ts";
import { hmacBase64 } from "../local/signing.ts";

export interface WebhooksBench extends CaseResult, GatewayFigures {
  case: "webhooks";
  deliveries: number;
  deliveries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  duplicates_processed: number;
  /** QuickBooks notifications answered while each one's re-fetch was held `qb_refetch_ms`. */
  qb_deliveries: number;
  qb_refetch_ms: number;
  qb_answer_p50_ms: number;
  /** Target: under 100 ms (docs/architecture.md "Webhooks: answer first"). */
  qb_answer_p99_ms: number;
  /** The same notifications answered with re-fetches at full speed: what the machine gives. */
  qb_answer_p99_ms_unheld: number;
}

const WEBHOOKS = { deliveries: 2_000, orders: 500, duplicateShare: 0.15, concurrency: 16 };
const QUICKBOOKS = { deliveries: 200, refetchMs: 2_000, concurrency: 8 };

export async function benchWebhooks(log: (line: string) => void): Promise<WebhooksBench> {
  return await withBenchWorld<WebhooksBench>(async ({ db, sandbox, serve, connect }) => {
    const account = await sandbox.account("shopify");
    const deps = await testDeps(db);
    await connect({
      provider: "shopify",
      external_id: account.external_id,
      name: "bench shop",
      credentials: account.credentials,
      config: sandbox.configFor(account),
    });
    const served = await serve(["webhooks"]);
    const secret = deps.env.apps.shopify!.clientSecret;
    const distinct = Math.round(WEBHOOKS.deliveries / (1 + WEBHOOKS.duplicateShare));
    log(`signing ${distinct} deliveries (+ ${WEBHOOKS.deliveries - distinct} repeats)…`);
    const base = Date.parse("2026-11-01T00:00:00Z");
    const messages: { headers: Record<string, string>; body: string }[] = [];
    for (let i = 0; i < distinct; i++) {
      const seq = 1 + (i % WEBHOOKS.orders);
      const version = Math.floor(i / WEBHOOKS.orders);
      const body = JSON.stringify({
        id: seq,
        admin_graphql_api_id: `gid://shopify/Order/${seq}`,
        name: `#${1000 + seq}`,
        created_at: new Date(base).toISOString(),
        updated_at: new Date(base + version * 60_000).toISOString(),
        cancelled_at: null,
        fulfillment_status: version > 1 ? "fulfilled" : null,
        total_price: `${10 + version}.00`,
        currency: "USD",
        customer: null,
        fulfillments: version > 1 ? [{ tracking_number: `TRK${seq}` }] : [],
      });
      messages.push({
        body,
        headers: {
          "content-type": "application/json",
          "x-shopify-topic": "orders/updated",
          "x-shopify-shop-domain": account.config.shop!,
          "x-shopify-webhook-id": crypto.randomUUID(),
          "x-shopify-hmac-sha256": await hmacBase64(secret, body),
        },
      });
    }
    const queue = [...messages];
    while (queue.length < WEBHOOKS.deliveries) {
      queue.push(messages[Math.floor(Math.random() * messages.length)]!);
    }
    for (let i = queue.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [queue[i], queue[j]] = [queue[j]!, queue[i]!];
    }
    const url = `${served.functionsUrl}/webhooks/shopify`;
    // Warm up the function's connection pool outside the measurement.
    await (await fetch(url, { method: "POST", body: "{}" })).body?.cancel();

    log(`delivering ${queue.length}, ${WEBHOOKS.concurrency} at a time…`);
    const started = performance.now();
    const latencies = await deliverAll(url, queue, WEBHOOKS.concurrency);
    const wallS = (performance.now() - started) / 1000;
    await webhookEventsSettled(db);
    const [counts] = await db.sql<{ rows: number; processed: number; extra: number }[]>`
      select count(*)::int as rows,
             count(*) filter (where status = 'processed')::int as processed,
             coalesce(sum(attempts - 1) filter (where attempts > 1), 0)::int as extra
        from tether.webhook_events`;
    if (counts!.rows !== distinct || counts!.processed !== distinct) {
      throw new Error(`webhooks bench is wrong: ${JSON.stringify(counts)} of ${distinct} events`);
    }
    const books = await quickbooksWorld({
      db,
      sandbox,
      deps,
      connect,
      url: served.functionsUrl,
      log,
    });
    const unheld = await books.answers(0);
    const qb = await books.answers(QUICKBOOKS.refetchMs);
    return {
      case: "webhooks",
      deliveries: queue.length,
      deliveries_per_s: round(queue.length / wallS, 0),
      p50_ms: round(percentile(latencies, 0.5), 1),
      p99_ms: round(percentile(latencies, 0.99), 1),
      duplicates_processed: counts!.extra + (counts!.processed - distinct),
      qb_deliveries: QUICKBOOKS.deliveries,
      qb_refetch_ms: QUICKBOOKS.refetchMs,
      qb_answer_p50_ms: round(percentile(qb, 0.5), 1),
      qb_answer_p99_ms: round(percentile(qb, 0.99), 1),
      qb_answer_p99_ms_unheld: round(percentile(unheld, 0.99), 1),
    };
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/**
 * A QuickBooks connection with seeded invoices, and `answers(refetchMs)`: signed notifications
 * (legacy format, one entity each) sent while the sandbox holds every QuickBooks API answer
 * `refetchMs`, and the latency of each answer. Every event must still end processed, through the
 * held re-fetch, after its answer.
 */
async function quickbooksWorld(w: {
  db: TestDatabase;
  sandbox: SandboxControl;
  deps: Deps;
  connect: BenchWorld["connect"];
  url: string;
  log: (line: string) => void;
}): Promise<{ answers(refetchMs: number): Promise<number[]> }> {
  const account = await w.sandbox.account("quickbooks");
  const realm = account.external_id;
  await w.sandbox.call("POST", `/data/quickbooks/${realm}/seed`, { seed: 5, orders: 100 });
  // Re-fetches are not paced: room for every held one at once.
  await w.sandbox.call("POST", "/config", {
    limits: { quickbooks: { capacity: 100_000, restore_per_second: 10_000 } },
  });
  await w.connect({
    provider: "quickbooks",
    external_id: realm,
    name: "bench books",
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  const { records } = await w.sandbox.call<{ records: { external_id: string }[] }>(
    "GET",
    `/data/quickbooks/${realm}/orders`,
  );
  const verifier = w.deps.env.webhooks.quickbooks[0]!;
  const url = `${w.url}/webhooks/quickbooks`;
  let sent = 0;
  return {
    async answers(refetchMs) {
      const messages: { headers: Record<string, string>; body: string }[] = [];
      for (let i = 0; i < QUICKBOOKS.deliveries; i++, sent++) {
        const [name, id] = records[sent % records.length]!.external_id.split(":");
        const body = JSON.stringify({
          eventNotifications: [{
            realmId: realm,
            dataChangeEvent: {
              entities: [{
                name,
                id,
                operation: "Update",
                // Distinct for every notification, so each is an event of its own.
                lastUpdated: new Date(Date.now() - 600_000 + sent).toISOString(),
              }],
            },
          }],
        });
        messages.push({
          body,
          headers: {
            "content-type": "application/json",
            "intuit-signature": await hmacBase64(verifier, body),
          },
        });
      }
      if (refetchMs > 0) {
        await w.sandbox.fault({
          provider: "quickbooks",
          endpoint: "api",
          kind: "slow",
          delay_ms: refetchMs,
          count: 0,
        });
      }
      w.log(
        `delivering ${messages.length} QuickBooks notifications, ${QUICKBOOKS.concurrency} at a ` +
          `time, each re-fetch held ${refetchMs} ms…`,
      );
      const latencies = await deliverAll(url, messages, QUICKBOOKS.concurrency);
      await webhookEventsSettled(w.db);
      await w.sandbox.call("DELETE", "/faults");
      const [counts] = await w.db.sql<{ rows: number; processed: number }[]>`
        select count(*)::int as rows,
               count(*) filter (where status = 'processed')::int as processed
          from tether.webhook_events where provider = 'quickbooks'`;
      if (counts!.rows !== sent || counts!.processed !== sent) {
        throw new Error(`quickbooks answers bench is wrong: ${JSON.stringify(counts)} of ${sent}`);
      }
      return latencies;
    },
  };
}

/** Posts each signed delivery, `concurrency` at a time; each answer's latency, in ms (all 200). */
async function deliverAll(
  url: string,
  deliveries: { headers: Record<string, string>; body: string }[],
  concurrency: number,
): Promise<number[]> {
  const latencies: number[] = [];
  await inParallel(deliveries, concurrency, async (m) => {
    const t = performance.now();
    const res = await fetch(url, { method: "POST", headers: m.headers, body: m.body });
    await res.body?.cancel();
    latencies.push(performance.now() - t);
    if (res.status !== 200) throw new Error(`webhooks answered ${res.status}`);
  });
  return latencies;
}
