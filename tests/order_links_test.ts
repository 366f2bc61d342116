// Orders across providers (issue #15 items 2-3), against the real local Postgres, the provider
// sandboxes and the served webhooks function: a shop on Shopify ships with ShipHero and Maystro;
// its orders are handed to a carrier and shipped in a seeded random order and timing, with syncs
// and webhooks of the three connections interleaved, so a carrier's record often arrives before
// the store's. Afterwards tether.order_status equals the sandboxes' truth for every order,
// re-running everything changes nothing, and the change feed carries the links and the carriers'
// status changes. Also: link_connections' rules and refusals, the README's queries, and RLS.
import assert from "node:assert/strict";
import { runBackfill } from "../functions-shared/jobs/backfill.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import { adapters } from "../functions-shared/providers/registry.ts";
import type { ProviderName } from "../functions-shared/providers/types.ts";
import type { Sql } from "../functions-shared/db/client.ts";
import { prng } from "../sandbox/data.ts";
import { runScript, webhookEventsSettled, withTestDatabase } from "./helpers/stack.ts";
import type { SandboxAccount } from "./helpers/sandbox.ts";
import { type WebhookWorld, withWebhookWorld } from "./helpers/webhooks_world.ts";

interface Conn {
  id: string;
  provider: ProviderName;
  account: SandboxAccount;
}

interface Truth {
  external_id: string;
  status: string;
  tracking_number?: string | null;
  order_number?: string | null;
}

const withWorld = (fn: (w: WebhookWorld) => Promise<void>) =>
  withWebhookWorld(fn, {
    shopify: { capacity: 1e9, restorePerSecond: 1e9 },
    shiphero: { capacity: 1e9, restorePerSecond: 1e9 },
  });

async function connectAccount(
  w: WebhookWorld,
  provider: ProviderName,
  seed: Record<string, unknown>,
  owner: string | null = null,
): Promise<Conn> {
  const account = await w.sandbox.account(provider);
  await w.sandbox.call("POST", `/data/${provider}/${account.external_id}/seed`, seed);
  const result = await runConnect(w.deps, {
    provider,
    external_id: account.external_id,
    name: `${provider} ${account.external_id}`,
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  if (owner !== null) {
    await w.db
      .sql`update tether.connections set owner_id = ${owner} where id = ${result.connection_id}`;
  }
  return { id: result.connection_id, provider, account };
}

function truthOf(w: WebhookWorld, c: Conn): Promise<Truth[]> {
  return w.sandbox.call<{ records: Truth[] }>(
    "GET",
    `/data/${c.provider}/${c.account.external_id}/orders`,
  ).then((b) => b.records);
}

async function sync(w: WebhookWorld, c: Conn): Promise<void> {
  const result = await runSync(w.deps, "orders", { connection_id: c.id, force: true });
  for (const run of result.runs) assert.equal(run.status, "succeeded", JSON.stringify(run));
}

function hookUrl(w: WebhookWorld, c: Conn): string {
  if (c.provider === "maystro") {
    return `${w.hooks}/maystro/${c.id}/${c.account.credentials.webhook_secret}`;
  }
  return c.provider === "shiphero" ? `${w.hooks}/shiphero/${c.id}` : `${w.hooks}/${c.provider}`;
}

async function deliverWebhooks(w: WebhookWorld, c: Conn, seed: number): Promise<void> {
  const sent = await w.sandbox.call<{ failed: number }>("POST", "/webhooks/deliver", {
    provider: c.provider,
    accounts: [c.account.external_id],
    url: hookUrl(w, c),
    duplicate_share: 0.2,
    seed,
  });
  assert.equal(sent.failed, 0, "every delivery is answered 2xx");
  await webhookEventsSettled(w.db);
}

function link(sql: Sql, store: Conn, fulfillment: Conn, key?: string, storeKey?: string) {
  return sql<{ id: string }[]>`
    select public.link_connections(${store.id}, ${fulfillment.id}, ${key ?? null},
                                   ${storeKey ?? null}) as id`.then((r) => r[0]!.id);
}

/** The CLI against the world's database, as against a project: its --json answer, or its text. */
async function cli(w: WebhookWorld, args: string[], text = false): Promise<unknown> {
  const run = await runScript(
    ["scripts/cli.ts", ...args, ...(text ? [] : ["--json"]), "--project"],
    {
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/root",
        NO_COLOR: "1",
        SUPABASE_URL: w.hooks.replace(/\/functions\/v1\/webhooks$/, ""),
        TETHER_SERVICE_KEY: "unused-by-these-commands",
        DATABASE_URL: w.db.url,
      },
      clearEnv: true,
    },
  );
  assert.equal(run.code, 0, `tether ${args.join(" ")}: ${run.stderr}`);
  return text ? run.stdout : JSON.parse(run.stdout);
}

/** The README's queries a shop runs, as written there, with now() at `at`. */
function readmeQueries(): string[] {
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  const block = readme.split("The queries a shop runs")[1]!.split("```sql\n")[1]!.split("```")[0]!;
  return block.trim().split(/\n\n/);
}

interface StatusRow {
  order_number: string;
  tracking_numbers: string[];
  shipping_status: string | null;
  carrier_provider: string | null;
  fulfillment_orders: number;
}

function orderStatus(sql: Sql, store: Conn): Promise<StatusRow[]> {
  return sql<StatusRow[]>`
    select order_number, tracking_numbers, shipping_status, carrier_provider, fulfillment_orders
      from tether.order_status where connection_id = ${store.id} order by order_number`;
}

/**
 * A carrier record's shipping status, from the sandbox's word: Maystro's status names (created,
 * in_progress: not yet with the carrier; shipped; delivered; cancelled). ShipHero, a warehouse,
 * has none: its fulfillment_status (pending, fulfilled, canceled) says nothing of a delivery.
 */
const SHIPPING_STATUS: Readonly<Record<string, string | null>> = {
  created: "pending",
  in_progress: "pending",
  shipped: "in_transit",
  delivered: "delivered",
  cancelled: "canceled",
  pending: null,
  fulfilled: null,
  canceled: null,
};

Deno.test("the store and fulfillment providers SQL links are the registry's providers with orders", () =>
  withTestDatabase(async (db) => {
    const [row] = await db.sql<{ store: string[]; fulfillment: string[] }[]>`
      select tether.store_providers() as store, tether.fulfillment_providers() as fulfillment`;
    const withOrders = Object.values(adapters).filter((a) => "orders" in a.streams)
      .map((a) => a.provider).sort();
    assert.deepEqual([...row!.store, ...row!.fulfillment].sort(), withOrders);
    // Each fulfillment provider's default key is one its adapter stores (tether.order_key reads
    // it), and no store provider has one.
    const roles = await db.sql<{ provider: string; role: string; key: string | null }[]>`
      select provider, role, default_fulfillment_key as key from tether.order_link_roles()
       order by provider`;
    assert.deepEqual(roles.map((r) => [r.provider, r.role, r.key]), [
      ["lightspeed", "store", null],
      ["maystro", "fulfillment", "external_order_id"],
      ["quickbooks", "store", null],
      ["shiphero", "fulfillment", "partner_order_id"],
      ["shopify", "store", null],
    ]);
  }));

Deno.test("link_connections: defaults per provider, rules it refuses, the same rule twice changes nothing", () =>
  withWorld(async (w) => {
    const owner = crypto.randomUUID();
    const shop = await connectAccount(w, "shopify", { orders: 0 }, owner);
    const books = await connectAccount(w, "quickbooks", { orders: 0 }, owner);
    const hero = await connectAccount(w, "shiphero", { orders: 0 }, owner);
    const mays = await connectAccount(w, "maystro", { orders: 0 }, owner);
    const stranger = await connectAccount(w, "maystro", { orders: 0 }, crypto.randomUUID());

    const heroLink = await link(w.db.sql, shop, hero);
    await link(w.db.sql, shop, mays);
    const rules = await w.db.sql`
      select c.provider, l.store_key, l.fulfillment_key from tether.connection_links l
        join tether.connections c on c.id = l.fulfillment_connection_id order by c.provider`;
    assert.deepEqual(rules.map((r) => ({ ...r })), [
      { provider: "maystro", store_key: "order_number", fulfillment_key: "external_order_id" },
      { provider: "shiphero", store_key: "order_number", fulfillment_key: "partner_order_id" },
    ]);
    assert.equal(await link(w.db.sql, shop, hero), heroLink, "the same rule: the same link");
    assert.equal(await link(w.db.sql, shop, hero, "order_number", "external_id"), heroLink);
    const [changed] = await w.db.sql`
      select store_key, fulfillment_key from tether.connection_links where id = ${heroLink}`;
    assert.deepEqual({ ...changed }, { store_key: "external_id", fulfillment_key: "order_number" });

    const refused = async (run: () => Promise<unknown>, message: RegExp) =>
      await assert.rejects(run, message);
    await refused(() => link(w.db.sql, hero, shop), /is a shiphero connection, not a store/);
    await refused(
      () => link(w.db.sql, shop, books),
      /is a quickbooks connection, not a fulfillment/,
    );
    await refused(() => link(w.db.sql, shop, stranger), /different owners/);
    await refused(() => link(w.db.sql, shop, mays, "partner_order_id"), /a maystro order has no/);
    await refused(() => link(w.db.sql, shop, hero, undefined, "sku"), /not sku/);
    await refused(
      () => link(w.db.sql, shop, { ...hero, id: crypto.randomUUID() }),
      /no connection/,
    );
  }));

Deno.test("a shop on Shopify, ShipHero and Maystro: order_status equals the truth whichever record arrived first", () =>
  withWorld(async (w) => {
    const seed = Number(Deno.env.get("TETHER_TEST_SEED") ?? Date.now() % 1_000_000);
    console.log(`order_links world seed: ${seed} (TETHER_TEST_SEED=${seed} reruns it)`);
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

    const ORDERS = 24;
    const shop = await connectAccount(w, "shopify", { seed, orders: 0, customers: 5 });
    const hero = await connectAccount(w, "shiphero", { orders: 0 });
    const mays = await connectAccount(w, "maystro", { orders: 0 });
    const carriers = [hero, mays];
    await link(w.db.sql, shop, hero);

    // Each order is created in the store, then (most of them) handed to ShipHero or Maystro and
    // moved on at random. ShipHero keeps the store's "#1001" as order_number and
    // partner_order_id; the shop's Maystro integration hands over "1001" as external_order_id
    // (both spellings must match).
    type Step = { number: string; at: Conn; stage?: string };
    const plans: Step[][] = [];
    for (let i = 1; i <= ORDERS; i++) {
      const number = `${1000 + i}`;
      const plan: Step[] = [{ number, at: shop }];
      const roll = random();
      if (i === 1) {
        // The first goes to Maystro and ships while stored: a status change the feed must carry.
        const stages = ["shipped", "delivered"];
        plan.push({ number, at: mays }, ...stages.map((stage) => ({ number, at: mays, stage })));
      } else if (roll >= 0.1) {
        const carrier = roll < 0.55 ? hero : mays;
        const stages = pick([[], ["processing"], ["shipped"], ["shipped", "delivered"], [
          "cancelled",
        ], ["processing", "shipped", "delivered"]]);
        plan.push(
          { number, at: carrier },
          ...stages.map((stage) => ({ number, at: carrier, stage })),
        );
      }
      plans.push(plan);
    }
    const seqs = new Map<string, number>();
    const apply = async ({ number, at, stage }: Step) => {
      const path = `/data/${at.provider}/${at.account.external_id}/orders`;
      if (stage !== undefined) {
        await w.sandbox.call("POST", `${path}/${seqs.get(`${at.provider}:${number}`)}/stage`, {
          stage,
        });
        return;
      }
      const name = at.provider === "shiphero" ? `#${number}` : number;
      const made = await w.sandbox.call<{ seq: number }>("POST", path, {
        number: name,
        reference: name,
      });
      seqs.set(`${at.provider}:${number}`, made.seq);
    };

    // First one order whose carrier record is stored before the store's (and then ships), and
    // one the other way round; then the world's events in a random order: each order's steps in their own order,
    // syncs and webhook deliveries of the three connections between them. Maystro is linked
    // only along the way, so link_connections links what is already stored.
    const [first, second] = plans.filter((p) => p.length > 1);
    for (const step of first!.slice(0, 2)) await apply(step);
    await sync(w, first![1]!.at);
    await sync(w, shop);
    await apply(first![2]!);
    await sync(w, first![1]!.at);
    for (const step of second!.slice(0, 2)) await apply(step);
    await sync(w, shop);
    await sync(w, second![1]!.at);
    const pending = plans.map((steps) =>
      steps === first ? steps.slice(3) : steps === second ? steps.slice(2) : [...steps]
    );
    let events = 0;
    let maystroLinked = false;
    while (pending.some((steps) => steps.length > 0)) {
      const roll = random();
      events++;
      if (roll < 0.6) {
        const steps = pick(pending.filter((s) => s.length > 0));
        await apply(steps.shift()!);
      } else if (roll < 0.8) {
        await sync(w, pick([shop, ...carriers]));
      } else if (roll < 0.95) {
        await deliverWebhooks(w, pick([shop, ...carriers]), seed + events);
      } else if (!maystroLinked) {
        const linked = await cli(w, ["link", shop.id, mays.id]) as { rule: string };
        assert.equal(linked.rule, "external_order_id = order_number");
        maystroLinked = true;
      }
    }
    if (!maystroLinked) await link(w.db.sql, shop, mays);
    for (const c of [shop, ...carriers]) await deliverWebhooks(w, c, seed);
    for (const c of [shop, ...carriers]) await sync(w, c);
    const storeOrders = await truthOf(w, shop);

    // Both arrival orders happened: links made when the store order arrived, and when the
    // carrier's did.
    const [arrivals] = await w.db.sql<{ carrier_first: number; store_first: number }[]>`
      select count(*) filter (where f.first_seen_at < s.first_seen_at)::int as carrier_first,
             count(*) filter (where f.first_seen_at > s.first_seen_at)::int as store_first
        from tether.order_links k join tether.orders s on s.id = k.store_order_id
        join tether.orders f on f.id = k.fulfillment_order_id`;
    console.log(`links: ${JSON.stringify(arrivals)} after ${events} events`);
    assert.ok(arrivals!.carrier_first > 0 && arrivals!.store_first > 0, JSON.stringify(arrivals));

    // The truth: per store order, its carrier's record in the sandbox.
    const carrierTruth = new Map<string, { provider: string; record: Truth }>();
    for (const c of carriers) {
      for (const record of await truthOf(w, c)) {
        carrierTruth.set(`#${record.order_number!.replace(/^#/, "")}`, {
          provider: c.provider,
          record,
        });
      }
    }
    const expected: StatusRow[] = storeOrders.map((order) => {
      const carried = carrierTruth.get(order.order_number!);
      return {
        order_number: order.order_number!,
        tracking_numbers: carried?.record.tracking_number ? [carried.record.tracking_number] : [],
        shipping_status: carried ? SHIPPING_STATUS[carried.record.status] ?? null : null,
        carrier_provider: carried?.provider ?? null,
        fulfillment_orders: carried ? 1 : 0,
      };
    }).sort((a, b) => a.order_number.localeCompare(b.order_number));
    const before = await orderStatus(w.db.sql, shop);
    assert.deepEqual(before.map((r) => ({ ...r })), expected, `seed ${seed}`);
    assert.equal(
      expected.filter((r) => r.carrier_provider).length,
      plans.filter((p) => p.length > 1).length,
    );

    // Re-running everything changes nothing: syncs, backfills, a relink with the same rules,
    // webhooks.
    const snapshot = async () => ({
      links: (await w.db.sql`
        select connection_link_id, store_order_id, fulfillment_order_id, linked_at
          from tether.order_links order by 2, 3`).map((r) => ({ ...r })),
      changes: (await w.db.sql`select count(*)::int as n from tether.changes`)[0]!.n,
    });
    const settled = await snapshot();
    for (const c of [shop, ...carriers]) {
      await sync(w, c);
      const [job] = await w.db.sql<{ id: string }[]>`
        select tether.create_backfill(${c.id}, 'orders', now() - interval '3 days', now()) as id`;
      assert.equal((await runBackfill(w.deps, { backfill_id: job!.id })).status, "succeeded");
    }
    await link(w.db.sql, shop, hero);
    await link(w.db.sql, shop, mays);
    for (const c of carriers) await deliverWebhooks(w, c, seed + 1);
    assert.deepEqual(await snapshot(), settled, "nothing changed");
    assert.deepEqual((await orderStatus(w.db.sql, shop)).map((r) => ({ ...r })), expected);

    // The README's queries, against the truth: nothing is late now; in 8 days every order still
    // on its way is, and in 3 days every order without a tracking number (canceled aside).
    const [shippedLate, paidUnfulfilled, untracked] = readmeQueries();
    const numbers = async (query: string, days: number) => {
      const at = new Date(Date.now() + days * 86_400_000).toISOString();
      const rows = await w.db.sql.unsafe(query.replaceAll("now()", `'${at}'::timestamptz`));
      return rows.map((r) => r.order_number as string).sort();
    };
    const where = (ok: (r: StatusRow) => boolean) =>
      expected.filter(ok).map((r) => r.order_number).sort();
    assert.deepEqual(await numbers(shippedLate!, 0), []);
    assert.deepEqual(
      await numbers(shippedLate!, 8),
      where((r) => r.shipping_status === "in_transit"),
    );
    // Every store order is PAID and UNFULFILLED at the store (the carriers never write back).
    assert.deepEqual(
      await numbers(paidUnfulfilled!, 0),
      where((r) => r.tracking_numbers.length === 0),
    );
    assert.deepEqual(await numbers(untracked!, 0), []);
    assert.deepEqual(
      await numbers(untracked!, 3),
      where((r) => r.tracking_numbers.length === 0 && r.shipping_status !== "canceled"),
    );

    // The CLI's order: the store's record, the carrier's, the same figures as the view.
    for (const row of expected.filter((r) => r.carrier_provider).slice(0, 3)) {
      const shown = await cli(w, ["order", row.order_number.slice(1)]) as {
        orders: StatusRow[];
        records: { role: string; provider: string; tracking_number: string | null }[];
      };
      assert.deepEqual(
        shown.orders.map((o) => ({
          order_number: o.order_number,
          tracking_numbers: o.tracking_numbers,
          shipping_status: o.shipping_status,
          carrier_provider: o.carrier_provider,
          fulfillment_orders: o.fulfillment_orders,
        })),
        [row],
      );
      assert.deepEqual(
        shown.records.map((r) => `${r.role} ${r.provider}`),
        ["store shopify", `fulfillment ${row.carrier_provider}`],
      );
    }

    const tracked = expected.find((r) => r.tracking_numbers.length > 0)!;
    const text = await cli(w, ["order", tracked.order_number], true) as string;
    assert.match(
      text,
      new RegExp(`^${tracked.order_number} \\(shopify gid://shopify/Order/\\d+\\)`),
    );
    assert.match(text, new RegExp(`tracking ${tracked.tracking_numbers[0]}; 1 fulfillment record`));
    assert.match(text, new RegExp(`^fulfillment +${tracked.carrier_provider} `, "m"));

    // The feed: one "linked" change per link, on the store order; a carrier's status change is
    // a change of its record like any other.
    await w.db.sql`select tether.publish_changes(1000000)`;
    const linked = await w.db.sql<{ record_id: string; provider: string }[]>`
      select record_id, fields -> 'linked' ->> 'provider' as provider from tether.changes
       where connection_id = ${shop.id} and fields ? 'linked' order by record_id`;
    const links = await w.db.sql<{ record_id: string; provider: string }[]>`
      select s.external_id as record_id, c.provider from tether.order_links k
        join tether.orders s on s.id = k.store_order_id
        join tether.orders f on f.id = k.fulfillment_order_id
        join tether.connections c on c.id = f.connection_id order by 1`;
    assert.deepEqual(linked.map((r) => ({ ...r })), links.map((r) => ({ ...r })));
    const stale = await w.db.sql<{ record_id: string; said: string; now: string }[]>`
      select distinct on (c.record_id) c.record_id, c.fields ->> 'shipping_status' as said,
             o.shipping_status as now
        from tether.changes c
        join tether.orders o on o.connection_id = c.connection_id and o.external_id = c.record_id
       where c.connection_id in (${hero.id}, ${mays.id}) and c.fields ? 'shipping_status'
       order by c.record_id, c.id desc`;
    assert.ok(stale.length > 0, "carriers' shipping status changes are in the feed");
    assert.deepEqual(stale.filter((r) => r.said !== r.now), [], "the last one says the status");
  }));

Deno.test("tether.order_status and its Data API view: an owner sees only their orders", () =>
  withWorld(async (w) => {
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    const mine = await connectAccount(w, "shopify", { orders: 0 }, a);
    const theirs = await connectAccount(w, "shopify", { orders: 0 }, b);
    const theirCarrier = await connectAccount(w, "maystro", { orders: 0 }, b);
    for (const [shop, number] of [[mine, "1001"], [theirs, "1001"]] as const) {
      await w.sandbox.call("POST", `/data/shopify/${shop.account.external_id}/orders`, {
        number,
        reference: number,
      });
      await sync(w, shop);
    }
    await w.sandbox.call("POST", `/data/maystro/${theirCarrier.account.external_id}/orders`, {
      number: "1001",
      reference: "1001",
    });
    await sync(w, theirCarrier);
    await link(w.db.sql, theirs, theirCarrier);

    for (const [user, own] of [[a, mine], [b, theirs]] as const) {
      const seen = await w.db.sql.begin(async (tx) => {
        await tx.unsafe("set local role authenticated");
        await tx`select set_config('request.jwt.claims', ${
          JSON.stringify({ sub: user, role: "authenticated" })
        }, true)`;
        return {
          view: await tx`select connection_id, fulfillment_orders from tether.order_status`,
          api: await tx`select connection_id from public.tether_order_status`,
          links: await tx`select count(*)::int as n from tether.order_links`,
        };
      });
      assert.deepEqual(seen.view.map((r) => r.connection_id), [own.id]);
      assert.deepEqual(seen.api.map((r) => r.connection_id), [own.id]);
      assert.equal(seen.links[0]!.n, own === theirs ? 1 : 0);
      assert.equal(seen.view[0]!.fulfillment_orders, own === theirs ? 1 : 0);
    }
  }));
