// What the sync, backfill and other database tests share about synced records: a seeded sandbox
// account registered through `connect`, the sandbox's truth for a stream, what Tether stored for
// it, and the comparison of the two.
import assert from "node:assert/strict";
import type { Sql } from "../../functions-shared/db/client.ts";
import { runConnect } from "../../functions-shared/jobs/connect.ts";
import type { Deps } from "../../functions-shared/deps.ts";
import type { ProviderName, StreamName } from "../../functions-shared/providers/types.ts";
import type { SandboxControl } from "./sandbox.ts";

export interface Conn {
  id: string;
  provider: ProviderName;
  externalId: string;
}

/** A new sandbox account seeded with `seed` (the control API's body), registered through connect. */
export async function connectSeeded(
  deps: Deps,
  sandbox: SandboxControl,
  provider: ProviderName,
  seed: Record<string, unknown>,
): Promise<Conn> {
  const account = await sandbox.account(provider);
  await sandbox.call("POST", `/data/${provider}/${account.external_id}/seed`, seed);
  const result = await runConnect(deps, {
    provider,
    external_id: account.external_id,
    name: `${provider} ${account.external_id}`,
    credentials: account.credentials,
    config: sandbox.configFor(account),
  });
  return { id: result.connection_id, provider, externalId: account.external_id };
}

export interface TruthRecord {
  external_id: string;
  updated_at: string;
  status: string;
  tracking_number?: string | null;
}

/** The sandbox's records of a stream, as the adapter must store them. */
export async function truth(
  sandbox: SandboxControl,
  conn: Conn,
  stream: StreamName,
): Promise<TruthRecord[]> {
  const body = await sandbox.call<{ records: TruthRecord[] }>(
    "GET",
    `/data/${conn.provider}/${conn.externalId}/${stream}`,
  );
  return body.records;
}

export interface StoredRecord {
  external_id: string;
  remote_updated_at: Date;
  status: string;
  tracking_number: string | null;
}

/** What Tether stored for a connection's stream. */
export async function stored(sql: Sql, conn: Conn, stream: StreamName): Promise<StoredRecord[]> {
  return stream === "orders"
    ? await sql<StoredRecord[]>`
        select external_id, remote_updated_at, status, tracking_number from tether.orders
         where connection_id = ${conn.id}`
    : await sql<StoredRecord[]>`
        select external_id, remote_updated_at, status, null as tracking_number
          from tether.customers where connection_id = ${conn.id}`;
}

/** The stored rows are exactly `expected`, each at its version there (tracking numbers of orders). */
export function assertSameRecords(
  actual: StoredRecord[],
  expected: TruthRecord[],
  stream: StreamName,
  label: string,
): void {
  const want = new Map(expected.map((r) => [r.external_id, r]));
  assert.equal(actual.length, want.size, `${label}: row count`);
  for (const row of actual) {
    const t = want.get(row.external_id);
    assert.ok(t, `${label}: ${row.external_id} should not be stored`);
    assert.equal(row.remote_updated_at.toISOString(), t.updated_at, `${label}: updated_at`);
    assert.equal(row.status, t.status, `${label}: status of ${row.external_id}`);
    if (stream === "orders") {
      assert.equal(
        row.tracking_number,
        t.tracking_number ?? null,
        `${label}: tracking number of ${row.external_id}`,
      );
    }
  }
}
