// The README's ShipHero example (client/examples/customs_values.ts, issue #14 item 6): an Edge
// Function that reads the change feed and sets the customs value of each new ShipHero order's line
// items through Tether's proxy. End to end on the local stack: orders created in the ShipHero
// sandbox, synced (the feed appended), the README's entry point served as a function of its own
// and called; the sandbox holds the values on exactly those orders, once each, however often and
// however concurrently the example runs, and when the feed hands a change out again. And the
// sandbox's side: order_update_line_items as ShipHero's schema has it, refusals, credits.
import assert from "node:assert/strict";
import type { SqlTag } from "../client/mod.ts";
import {
  CONSUMER,
  type LineItem,
  ORDER_LINE_ITEMS_QUERY,
  setCustomsValues,
} from "../client/examples/customs_values.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import { freePort } from "../scripts/local/util.ts";
import { type Conn, connectSeeded } from "./helpers/records.ts";
import { eventually } from "./helpers/stack.ts";
import { setLimits, withAccount } from "./helpers/streams.ts";
import type { SandboxControl } from "./helpers/sandbox.ts";
import { type UserCodeWorld, withUserCodeWorld } from "./helpers/user_code.ts";

/** What the ShipHero sandbox recorded of order_update_line_items, per line item. */
interface Written {
  order_id: string;
  line_item_id: string;
  customs_value: string;
  writes: number;
  /** Sandbox clock, ms. */
  at: number;
}

async function written(sb: SandboxControl, externalId: string): Promise<Written[]> {
  const path = `/data/shiphero/${encodeURIComponent(externalId)}/written`;
  return (await sb.call<{ records: Written[] }>("GET", path)).records;
}

function seededShipHero(w: UserCodeWorld, orders: number, seed: number): Promise<Conn> {
  return connectSeeded(w.deps, w.sandbox, "shiphero", {
    seed,
    orders,
    customers: 0,
    spread_days: 1,
    tracked_share: 0,
  });
}

async function sync(w: UserCodeWorld, conn: Conn): Promise<void> {
  const result = await runSync(w.deps, "orders", { connection_id: conn.id, force: true });
  assert.equal(result.runs[0]!.status, "succeeded", JSON.stringify(result.runs[0]));
}

async function storedOrderIds(w: UserCodeWorld, conn: Conn): Promise<string[]> {
  const rows = await w.db.sql<{ external_id: string }[]>`
    select external_id from tether.orders where connection_id = ${conn.id} order by 1`;
  return rows.map((r) => r.external_id);
}

/** An order's line items as ShipHero shows them, read through the proxy. */
async function lineItemsOf(w: UserCodeWorld, conn: Conn, orderId: string): Promise<LineItem[]> {
  const res = await w.tether.proxy(conn.id, "/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: ORDER_LINE_ITEMS_QUERY, variables: { id: orderId } }),
  });
  const { data } = await res.json();
  return data.order.data.line_items.edges.map((e: { node: LineItem }) => e.node);
}

/**
 * Every stored order of `conn` has every line item set to its price, each written exactly once,
 * and nothing else was written. Returns how many line items there are.
 */
async function assertEachOrderSetOnce(w: UserCodeWorld, conn: Conn): Promise<number> {
  const orders = await storedOrderIds(w, conn);
  const writes = await written(w.sandbox, conn.externalId);
  assert.deepEqual([...new Set(writes.map((r) => r.order_id))].sort(), orders);
  assert.deepEqual(writes.filter((r) => r.writes !== 1), [], "each line item written once");
  let items = 0;
  for (const order of orders) {
    for (const item of await lineItemsOf(w, conn, order)) {
      assert.equal(item.customs_value, item.price, `customs value of ${item.id}`);
      items++;
    }
  }
  assert.equal(writes.length, items);
  return items;
}

/** The README's entry point, served as a function of its own (imports pointed at client/). */
async function serveReadmeExample(w: UserCodeWorld) {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = readme.split("<!-- customs-example:")[1]?.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "the README has the entry point");
  const port = freePort();
  const dir = new URL("../.tether/examples/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL(`customs_values_${port}.ts`, dir);
  const source = block
    .replace('"../_shared/tether.ts"', `"${new URL("../client/mod.ts", import.meta.url)}"`)
    .replace(
      '"../_shared/customs_values.ts"',
      `"${new URL("../client/examples/customs_values.ts", import.meta.url)}"`,
    )
    .replace("Deno.serve(", `Deno.serve({ hostname: "127.0.0.1", port: ${port} }, `);
  await Deno.writeTextFile(file, source);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file.pathname],
    env: {
      SUPABASE_DB_URL: w.db.url,
      SUPABASE_URL: w.functionsUrl.replace(/\/functions\/v1$/, ""),
      TETHER_SERVICE_KEY: w.secretKey,
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return {
    call: () =>
      eventually("the example function to answer", async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST" });
          assert.equal(res.status, 200, await res.clone().text());
          return await res.json();
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          return undefined; // not listening yet
        }
      }, 30_000),
    async stop() {
      child.kill();
      await child.stderr.cancel();
      await child.status;
      await Deno.remove(file).catch(() => {});
    },
  };
}

Deno.test("the README's customs-values function sets each new ShipHero order once, and again changes nothing", async () => {
  await withUserCodeWorld(async (w) => {
    const shiphero = await seededShipHero(w, 8, 7);
    // Another provider's new orders are in the feed too: read and acknowledged, left alone.
    const maystro = await connectSeeded(w.deps, w.sandbox, "maystro", {
      seed: 3,
      orders: 3,
      customers: 0,
      spread_days: 1,
      tracked_share: 0,
    });
    await sync(w, shiphero);
    await sync(w, maystro);

    const fn = await serveReadmeExample(w);
    try {
      const first = await fn.call();
      const items = await assertEachOrderSetOnce(w, shiphero);
      assert.deepEqual(first, { read: 11, orders: 8, line_items: items });
      assert.ok(items > 8, `orders of several line items (${items} for 8 orders)`);

      assert.deepEqual(await fn.call(), { read: 0, orders: 0, line_items: 0 });
      assert.equal(await assertEachOrderSetOnce(w, shiphero), items, "nothing written again");

      // The README shows the example's main function as it is in the file.
      const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
      const example = await Deno.readTextFile(
        new URL("../client/examples/customs_values.ts", import.meta.url),
      );
      const main = example.match(/^export async function setCustomsValues\([\s\S]*?^}$/m)?.[0];
      assert.ok(main && readme.includes(main), "README quotes setCustomsValues");
    } finally {
      await fn.stop();
    }
  });
});

Deno.test("customs values: a change handed out again and four concurrent runs write each order once", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await seededShipHero(w, 6, 21);
    await sync(w, conn);

    // A run whose connection dies before its acknowledgement: three orders written, none acked.
    const dying: SqlTag = (strings, ...values) =>
      strings.join("?").includes("ack_changes")
        ? Promise.reject(new Error("connection lost before the acknowledgement"))
        : w.db.sql(strings, ...values);
    await assert.rejects(setCustomsValues(w.tether, dying, 3), /connection lost/);
    assert.equal(
      new Set((await written(w.sandbox, conn.externalId)).map((r) => r.order_id)).size,
      3,
    );
    // Its lease runs out: the feed hands those three changes out again.
    await w.db.sql`update tether.change_leases set leased_until = now() - interval '1 second'
                    where consumer = ${CONSUMER} and not acked`;

    // New orders and updated ones at ShipHero, synced.
    const summary = await w.sandbox.call<{ orders_created: number; orders_updated: number }>(
      "POST",
      `/data/shiphero/${conn.externalId}/mutate`,
      { changes: 12 },
    );
    assert.ok(summary.orders_created > 0 && summary.orders_updated > 0, JSON.stringify(summary));
    await sync(w, conn);

    // Four runs at once, two changes per batch, each until the feed is drained.
    const drain = async () => {
      let orders = 0;
      while (true) {
        const handled = await setCustomsValues(w.tether, w.db.sql, 2);
        if (handled.read === 0) return orders;
        orders += handled.orders;
      }
    };
    const counts = await Promise.all([drain(), drain(), drain(), drain()]);
    // The three orders written before the failure were read again and left alone.
    assert.equal(counts.reduce((a, b) => a + b, 0), 3 + summary.orders_created);
    await assertEachOrderSetOnce(w, conn);

    const [{ pending }] = await w.db.sql<[{ pending: number }]>`
      select count(*)::int as pending from tether.changes c
       where c.id > (select acked_through from tether.change_consumers where consumer = ${CONSUMER})`;
    assert.equal(pending, 0, "every change acknowledged");
  });
});

// ---------------------------------------------------------------------------------------------
// The sandbox's side, on its own: ShipHero's GraphQL endpoint with the account's token.

Deno.test("shiphero sandbox: order_update_line_items sets customs values, refuses what ShipHero's schema does, charges credits", async () => {
  await withAccount("shiphero", async ({ sb, account }) => {
    await sb.call("POST", `/data/shiphero/${account.external_id}/seed`, { seed: 4, orders: 3 });
    const graphql = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`${sb.configFor(account).api_base_url}/graphql`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${account.credentials.access_token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ query, variables }),
      });
      assert.equal(res.status, 200);
      return await res.json();
    };
    const order = btoa("Order:2");
    const read = await graphql(
      `query($id: String!) { order(id: $id) { complexity data { total_price
         line_items(first: 10) { edges { node { id price quantity customs_value } } } } } }`,
      { id: order },
    );
    const items = read.data.order.data.line_items.edges.map((e: { node: LineItem }) => e.node);
    assert.equal(read.data.order.complexity, 1 + items.length, "1 + one credit per line item");
    const cents = items.reduce((sum: number, i: LineItem) => sum + Math.round(+i.price * 100), 0);
    assert.equal(cents, Math.round(+read.data.order.data.total_price * 100));
    assert.ok(items.every((i: LineItem) => i.customs_value === null));

    const mutation = `mutation($data: UpdateLineItemsInput!) {
      order_update_line_items(data: $data) { complexity order { id } } }`;
    const set = (lineItems: unknown[], orderId = order) =>
      graphql(mutation, { data: { order_id: orderId, line_items: lineItems } });
    const first = items[0]!.id;
    const ok = await set([{ id: first, customs_value: "9.99" }]);
    assert.deepEqual(ok.data.order_update_line_items, { complexity: 1, order: { id: order } });
    const record = async () =>
      (await written(sb, account.external_id)).find((r) => r.line_item_id === first);
    const { at: _at, ...setOnce } = (await record())!;
    assert.deepEqual(setOnce, {
      order_id: order,
      line_item_id: first,
      customs_value: "9.99",
      writes: 1,
    });

    const refusals: [unknown[], string | undefined, RegExp][] = [
      [[{ id: first, customs_value: 9.99 }], undefined, /String cannot represent a non string/],
      [[{ id: first, customs_value: "about ten" }], undefined, /must be a decimal/],
      [[{ id: first, price: "1.00" }], undefined, /sets only customs_value/],
      [[{ id: first, customs_value: "1", colour: "red" }], undefined, /not defined by type/],
      [[{ customs_value: "1" }], undefined, /'id' of required type 'String!'/],
      [[{ id: first, customs_value: "1" }], btoa("Order:99"), /not found/],
      [[{ id: first, customs_value: "1" }], btoa("Order:3"), /Line item .* not found in order/],
    ];
    for (const [lineItems, orderId, message] of refusals) {
      const refused = await set(lineItems, orderId);
      assert.match(refused.errors?.[0]?.message ?? "", message, JSON.stringify(lineItems));
    }
    assert.equal((await record())!.writes, 1, "a refused mutation sets nothing");

    // Credits: a mutation draws from the account's bucket like a query, and is refused (code 30,
    // nothing set) when the bucket cannot pay for it.
    await setLimits(sb, "shiphero", { capacity: 2, restorePerSecond: 0.001 });
    assert.equal((await set([{ id: first, customs_value: "9.99" }])).errors, undefined);
    assert.equal((await set([{ id: first, customs_value: "9.99" }])).errors, undefined);
    const throttled = await set([{ id: first, customs_value: "1.00" }]);
    assert.equal(throttled.errors?.[0]?.code, 30);
    assert.equal((await record())!.customs_value, "9.99");
    assert.equal((await record())!.writes, 3, "the same value again is a write the sandbox counts");
  });
});
