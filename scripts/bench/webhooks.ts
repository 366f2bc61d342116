// bench webhooks (see main.ts): 2,000 signed Shopify deliveries, some repeated, sent 16 at a time
// to the served webhooks function.
import { testDeps } from "../local/harness.ts";
import { inParallel } from "./measure.ts";
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";
import { hmacBase64 } from "../local/signing.ts";

export interface WebhooksBench extends CaseResult, GatewayFigures {
  case: "webhooks";
  deliveries: number;
  deliveries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  duplicates_processed: number;
}

const WEBHOOKS = { deliveries: 2_000, orders: 500, duplicateShare: 0.15, concurrency: 16 };

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
    const latencies: number[] = [];
    const started = performance.now();
    await inParallel(queue, WEBHOOKS.concurrency, async (m) => {
      const t = performance.now();
      const res = await fetch(url, { method: "POST", headers: m.headers, body: m.body });
      await res.body?.cancel();
      latencies.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`webhooks answered ${res.status}`);
    });
    const wallS = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    const [counts] = await db.sql<{ rows: number; processed: number; extra: number }[]>`
      select count(*)::int as rows,
             count(*) filter (where status = 'processed')::int as processed,
             coalesce(sum(attempts - 1) filter (where attempts > 1), 0)::int as extra
        from tether.webhook_events`;
    if (counts!.rows !== distinct || counts!.processed !== distinct) {
      throw new Error(`webhooks bench is wrong: ${JSON.stringify(counts)} of ${distinct} events`);
    }
    return {
      case: "webhooks",
      deliveries: queue.length,
      deliveries_per_s: round(queue.length / wallS, 0),
      p50_ms: round(pct(0.5), 1),
      p99_ms: round(pct(0.99), 1),
      duplicates_processed: counts!.extra + (counts!.processed - distinct),
    };
  });
}
