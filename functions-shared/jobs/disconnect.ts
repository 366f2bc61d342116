// The disconnect job: ends a connection. It revokes the grant at the provider where the adapter
// can (a token the provider already rejects counts as revoked), then, in one transaction, deletes
// the credentials, cancels the connection's backfills, and keeps the connection as `disabled`
// with its synced records or deletes it with them, as asked. No sweep picks a disabled
// connection (they claim `active` and `error` ones), so no schedule calls it again; `connect`
// with new credentials makes it active. A revocation that fails for another reason (the provider
// is down) changes nothing: run it again, or pass `revoke: false`.
import { z } from "zod";
import {
  disconnectRequest,
  endConnection,
  getConnection,
  lockConnection,
} from "../db/connections.ts";
import { readCredentials } from "../db/credentials.ts";
import type { Deps, Job } from "../deps.ts";
import { JobError } from "../errors.ts";
import { adapterFor } from "../providers/registry.ts";
import { type ConnectionRef, ProviderError } from "../providers/types.ts";
import { adapterContext, connectionRef } from "./tokens.ts";

/** A disconnect asked for directly (the CLI, the dashboard, the user's code: a service-role caller). */
const DirectRequest = z.strictObject({
  connection_id: z.uuid(),
  /** Delete the connection's synced orders and customers (and its runs) too. */
  delete_records: z.boolean().default(false),
  /** End the grant at the provider first, where it can be (default). */
  revoke: z.boolean().default(true),
});

/** A disconnect disconnect_connection() recorded in SQL: what its call through pg_net carries. */
const RecordedRequest = z.strictObject({ request_id: z.uuid() });

export const DisconnectInput = z.union([DirectRequest, RecordedRequest]);
export type DisconnectInput = z.output<typeof DisconnectInput>;
type DirectRequest = z.output<typeof DirectRequest>;

export interface DisconnectResult {
  connection_id: string;
  provider: string;
  name: string;
  /**
   * revoked: the provider ended the grant; already_invalid: it rejected the token, so there was
   * nothing left to end; not_supported: the provider documents no revocation (see `hint`);
   * not_asked: `revoke` was false; no_credentials: none were stored.
   */
  revocation: "revoked" | "already_invalid" | "not_supported" | "not_asked" | "no_credentials";
  /** What a person does at the provider to end the grant there. */
  hint: string;
  records: "kept" | "deleted";
}

type Revocation = DisconnectResult["revocation"];

async function revokeAtProvider(
  deps: Deps,
  input: DirectRequest,
  conn: ConnectionRef,
): Promise<Revocation> {
  if (!input.revoke) return "not_asked";
  const adapter = adapterFor(conn.provider);
  if (!adapter.revoke) return "not_supported";
  const stored = await readCredentials(deps.db, deps.vault, conn.id);
  if (Object.keys(stored.values).length === 0) return "no_credentials";
  try {
    await adapter.revoke(adapterContext(deps), conn, stored.values);
    return "revoked";
  } catch (err) {
    if (
      err instanceof ProviderError && (err.code === "invalid_grant" || err.code === "unauthorized")
    ) {
      return "already_invalid";
    }
    if (err instanceof ProviderError) {
      throw new JobError(
        "provider_unavailable",
        `${conn.provider} did not revoke the grant (${err.message}); nothing was changed: try again, or disconnect with revoke: false`,
      );
    }
    throw err;
  }
}

/** The request itself, or the one disconnect_connection() recorded. */
async function requestOf(deps: Deps, input: DisconnectInput): Promise<DirectRequest> {
  if ("connection_id" in input) return input;
  const recorded = await disconnectRequest(deps.db, input.request_id);
  if (!recorded) {
    throw new JobError(
      "not_found",
      `no pending disconnect request ${input.request_id} (done already, or its connection is gone)`,
    );
  }
  return recorded;
}

export async function runDisconnect(
  deps: Deps,
  given: DisconnectInput,
): Promise<DisconnectResult> {
  const input = await requestOf(deps, given);
  const conn = await getConnection(deps.db, input.connection_id);
  if (!conn) {
    throw new JobError("unknown_connection", `no connection ${input.connection_id}`);
  }
  const ref = connectionRef(conn);
  const revocation = await revokeAtProvider(deps, input, ref);
  await deps.db.begin(async (tx) => {
    await lockConnection(tx, conn.id);
    await endConnection(tx, conn.id, {
      deleteRecords: input.delete_records,
      now: deps.now(),
      reason: `disconnected (${revocation}); connect it again to resume`,
    });
  });
  deps.log.info("disconnect", {
    connection_id: conn.id,
    provider: conn.provider,
    revocation,
    records: input.delete_records ? "deleted" : "kept",
  });
  return {
    connection_id: conn.id,
    provider: conn.provider,
    name: conn.name,
    revocation,
    hint: adapterFor(ref.provider).facts.revocationHint,
    records: input.delete_records ? "deleted" : "kept",
  };
}

export const disconnect: Job<DisconnectInput, DisconnectResult> = {
  name: "disconnect",
  input: DisconnectInput,
  run: runDisconnect,
  viaInvokeKey: RecordedRequest,
  viaInvokeKeyRefusal:
    "the invoke key only carries out a disconnect recorded by disconnect_connection(): send a secret API key or a service_role JWT",
};
