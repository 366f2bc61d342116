// The Shopify shop the sync and backfill cases read: seeded in the sandbox, registered through
// the connect function, and the stored orders compared with the sandbox's truth.
import type { TestDatabase } from "../local/harness.ts";
import { SandboxControl } from "../local/sandbox_control.ts";
import type { BenchWorld } from "./world.ts";

/**
 * A Shopify sandbox account with `orders` seeded orders, registered through connect, under a rate
 * budget too large to matter: the provider's limits are not what these cases measure.
 */
export async function connectedShop(
  { sandbox, connect }: BenchWorld,
  o: { seed: number; orders: number; spreadDays: number },
) {
  await sandbox.call("POST", "/config", {
    limits: { shopify: { capacity: 1e9, restore_per_second: 1e9 } },
  });
  const account = await sandbox.account("shopify");
  await sandbox.call("POST", `/data/shopify/${account.external_id}/seed`, {
    seed: o.seed,
    orders: o.orders,
    customers: 0,
    spread_days: o.spreadDays,
  });
  const { connection_id } = await connect({
    provider: "shopify",
    external_id: account.external_id,
    name: "bench shop",
    credentials: account.credentials,
    config: sandbox.configFor(account),
  });
  return { account, connection_id };
}

/** Stored orders, and how many equal the sandbox's truth (id, update time, status, tracking). */
export async function matchingTruth(
  db: TestDatabase,
  sandbox: SandboxControl,
  externalId: string,
  connectionId: string,
) {
  const { records } = await sandbox.call<{
    records: {
      external_id: string;
      updated_at: string;
      status: string;
      tracking_number: string | null;
    }[];
  }>("GET", `/data/shopify/${externalId}/orders`);
  const truth = new Map(records.map((r) => [r.external_id, r]));
  const rows = await db.sql<
    {
      external_id: string;
      remote_updated_at: Date;
      status: string;
      tracking_number: string | null;
    }[]
  >`select external_id, remote_updated_at, status, tracking_number from tether.orders
     where connection_id = ${connectionId}`;
  const matching = rows.filter((row) => {
    const want = truth.get(row.external_id);
    return want !== undefined && want.updated_at === row.remote_updated_at.toISOString() &&
      want.status === row.status && (want.tracking_number ?? null) === row.tracking_number;
  }).length;
  return { stored: rows.length, matching };
}
