// `npm run tether -- link|unlink|order`: a store connection linked to a fulfillment connection
// (public.link_connections, supabase/migrations/20261208030000_order_links.sql), and one order
// across providers (tether.order_status and the records behind it).
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

export const LINK_HELP =
  "link [<store connection> <fulfillment connection>] [--match <key>] [--store-key <key>] [--json]\n" +
  "  Links a store connection (shopify, lightspeed, quickbooks) to a fulfillment connection\n" +
  "  (shiphero, maystro) of the same owner: their orders are linked where the fulfillment\n" +
  "  order's --match key (default: ShipHero partner_order_id, Maystro external_order_id; or\n" +
  "  order_number) equals the store order's --store-key (default order_number; or external_id),\n" +
  "  a leading # aside. Links what is stored now; sync, backfill and webhooks link the rest.\n" +
  "  With no connections: the linked pairs and how many orders each has linked.";
export const UNLINK_HELP = "unlink <store connection> <fulfillment connection> [--json]\n" +
  "  Removes the link between two connections and their orders' links.";
export const ORDER_HELP = "order <number> [--connection <uuid>] [--json]\n" +
  "  One order across providers: the store's record and the fulfillment records linked to it\n" +
  "  (and any record with that number not linked yet), with their statuses, tracking numbers and\n" +
  "  when each changed. The number as the shop writes it: #1001 and 1001 are the same.";

interface Pair {
  id: string;
  store: string;
  store_connection_id: string;
  fulfillment: string;
  fulfillment_connection_id: string;
  rule: string;
  orders_linked: number;
}

function pairs(sql: Sql): Promise<Pair[]> {
  return sql<Pair[]>`
    select l.id, s.provider || ' ' || s.name as store, l.store_connection_id,
           f.provider || ' ' || f.name as fulfillment, l.fulfillment_connection_id,
           l.fulfillment_key || ' = ' || l.store_key as rule,
           (select count(*)::int from tether.order_links k where k.connection_link_id = l.id)
             as orders_linked
      from tether.connection_links l
      join tether.connections s on s.id = l.store_connection_id
      join tether.connections f on f.id = l.fulfillment_connection_id
     order by s.name, f.name`;
}

function twoConnections(args: string[], help: string): [string, string] {
  if (args.length !== 2) throw new UsageError(`usage: npm run tether -- ${help}`);
  return [
    checkUuid(args[0], "<store connection>")!,
    checkUuid(args[1], "<fulfillment connection>")!,
  ];
}

export async function linkCommand(
  t: Target,
  args: string[],
  opts: { match?: string; storeKey?: string },
  json: boolean,
): Promise<void> {
  if (args.length === 0 && opts.match === undefined && opts.storeKey === undefined) {
    const rows = await withDb(t, pairs);
    printResult(
      json,
      rows,
      () =>
        rows.length === 0
          ? "no linked connections: `npm run tether -- link <store> <fulfillment>`"
          : table(
            rows.map(({ store_connection_id: _s, fulfillment_connection_id: _f, ...r }) => r),
          ),
    );
    return;
  }
  const [store, fulfillment] = twoConnections(args, LINK_HELP);
  const pair = await withDb(t, async (sql) => {
    try {
      const [row] = await sql<{ id: string }[]>`
        select public.link_connections(${store}, ${fulfillment}, ${opts.match ?? null},
                                       ${opts.storeKey ?? null}) as id`;
      return (await pairs(sql)).find((p) => p.id === row!.id)!;
    } catch (err) {
      // The function's refusals name what is wrong (roles, owners, keys): say them as they are.
      const code = (err as { code?: string }).code;
      if (code === "22023" || code === "P0002") throw new UsageError((err as Error).message);
      throw err;
    }
  });
  printResult(
    json,
    pair,
    () =>
      `linked: ${pair.store} ← ${pair.fulfillment} (${pair.rule}); ${pair.orders_linked} order(s) linked`,
  );
}

export async function unlinkCommand(t: Target, args: string[], json: boolean): Promise<void> {
  const [store, fulfillment] = twoConnections(args, UNLINK_HELP);
  const removed = await withDb(t, async (sql) => {
    const [row] = await sql<{ removed: boolean }[]>`
      select public.unlink_connections(${store}, ${fulfillment}) as removed`;
    return row!.removed;
  });
  if (!removed) throw new CliError(`${store} and ${fulfillment} are not linked`);
  printResult(json, { removed }, () => "unlinked");
}

interface OrderRecordRow {
  role: "store" | "fulfillment";
  store_order_id: string | null;
  provider: string;
  connection: string;
  external_id: string;
  order_number: string | null;
  provider_status: string | null;
  financial_status: string | null;
  fulfillment_status: string | null;
  shipping_status: string | null;
  tracking_number: string | null;
  canceled_at: Date | null;
  remote_updated_at: Date | null;
  shipping_status_changed_at: Date | null;
}

/** Every record with this number, and every record linked to one of them. */
export function orderRecords(
  sql: Sql,
  number: string,
  connection: string | undefined,
): Promise<OrderRecordRow[]> {
  return sql<OrderRecordRow[]>`
    with named as (
      select o.id from tether.orders o
       where o.order_number in (${number}, '#' || ${number})
         and (${connection ?? null}::uuid is null or o.connection_id = ${connection ?? null})
    ), related as (
      select id from named
      union select k.fulfillment_order_id from tether.order_links k join named n on n.id = k.store_order_id
      union select k.store_order_id from tether.order_links k join named n on n.id = k.fulfillment_order_id
    )
    select case when c.provider = any(tether.store_providers()) then 'store' else 'fulfillment' end
             as role,
           (select min(k.store_order_id)::text from tether.order_links k
             where k.fulfillment_order_id = o.id) as store_order_id,
           c.provider, c.name as connection, o.external_id, o.order_number,
           o.status as provider_status, o.financial_status, o.fulfillment_status,
           o.shipping_status, o.tracking_number, o.canceled_at, o.remote_updated_at,
           case when o.shipping_status is not null
                then coalesce(h.changed_at, o.remote_updated_at, o.first_seen_at) end
             as shipping_status_changed_at
      from related r
      join tether.orders o on o.id = r.id
      join tether.connections c on c.id = o.connection_id
      left join tether.shipping_status_changes h on h.order_id = o.id
     order by role desc, c.provider, o.external_id`;
}

export async function orderCommand(
  t: Target,
  args: string[],
  connection: string | undefined,
  json: boolean,
): Promise<void> {
  if (args.length !== 1) throw new UsageError(`usage: npm run tether -- ${ORDER_HELP}`);
  const number = args[0]!.replace(/^#/, "");
  const { summary, records } = await withDb(t, async (sql) => ({
    summary: await sql`
      select s.provider, s.external_id, s.order_number, s.financial_status, s.fulfillment_status,
             s.canceled_at, s.tracking_numbers, s.shipping_status, s.shipping_status_changed_at,
             s.carrier_provider, s.fulfillment_orders
        from tether.order_status s
       where s.order_number in (${number}, '#' || ${number})
         and (${connection ?? null}::uuid is null or s.connection_id = ${connection ?? null})
       order by s.provider, s.external_id`,
    records: await orderRecords(sql, number, connection),
  }));
  if (records.length === 0) throw new CliError(`no order ${args[0]} in any connection`);
  printResult(json, { orders: summary, records }, () => {
    const lines = summary.map((s) =>
      `${s.order_number} (${s.provider} ${s.external_id}): ` +
      `financial ${s.financial_status ?? "-"}, fulfillment ${s.fulfillment_status ?? "-"}` +
      (s.canceled_at ? `, canceled ${s.canceled_at.toISOString()}` : "") +
      `; shipping ${s.shipping_status ?? "-"}` +
      (s.carrier_provider
        ? ` (${s.carrier_provider}, since ${s.shipping_status_changed_at?.toISOString() ?? "?"})`
        : "") +
      `; tracking ${s.tracking_numbers.length > 0 ? s.tracking_numbers.join(", ") : "none"}; ` +
      `${s.fulfillment_orders} fulfillment record(s) linked`
    );
    const unlinked = records.filter((r) => r.role === "fulfillment" && r.store_order_id === null);
    if (unlinked.length > 0) {
      lines.push(
        `${unlinked.length} fulfillment record(s) with this number are not linked to a store order ` +
          "(link the connections: `npm run tether -- link <store> <fulfillment>`)",
      );
    }
    return [
      ...lines,
      "",
      table(records.map(({ store_order_id: _s, ...r }) => ({
        ...r,
        canceled_at: r.canceled_at,
      }))),
    ].join("\n");
  });
}
