// tether.connections: registration, claiming due work with a lease, and the
// outcome of each token refresh. Every time comparison uses the caller's
// clock (`now`), so jobs run against simulated time in tests.
import type { Sql, Tx } from "./client.ts";
import type { SealedCredentials } from "./credentials.ts";

export type ConnectionStatus = "active" | "error" | "reauth_required" | "disabled";

export interface ConnectionRow {
  id: string;
  provider: string;
  external_id: string;
  name: string;
  owner_id: string | null;
  config: Record<string, unknown>;
  status: ConnectionStatus;
  token_expires_at: Date | null;
  refresh_token_expires_at: Date | null;
  refresh_token_issued_at: Date | null;
  last_token_refresh_at: Date | null;
  consecutive_failures: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  lease_owner: string | null;
}

export interface NewConnection {
  provider: string;
  external_id: string;
  name: string;
  owner_id: string | null;
  config: Record<string, unknown>;
}

/** Registers a connection, or re-registers it: active again, error state cleared. */
export async function upsertConnection(tx: Tx, c: NewConnection): Promise<ConnectionRow> {
  const [row] = await tx<ConnectionRow[]>`
    insert into tether.connections (provider, external_id, name, owner_id, config)
    values (${c.provider}, ${c.external_id}, ${c.name}, ${c.owner_id}, ${
    tx.json(c.config as never)
  })
    on conflict (provider, external_id) do update
       set name = excluded.name,
           owner_id = coalesce(excluded.owner_id, tether.connections.owner_id),
           config = excluded.config,
           status = 'active',
           consecutive_failures = 0,
           next_attempt_at = null,
           last_error = null,
           last_error_at = null,
           updated_at = now()
    returning *`;
  return row!;
}

export async function getConnection(sql: Sql, id: string): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`select * from tether.connections where id = ${id}`;
  return row;
}

/** Per provider, how close to an expiry a connection becomes due for a refresh. */
export interface RefreshPolicy {
  provider: string;
  access_margin_s: number;
  refresh_margin_s: number;
  /** Tokens that never expire (Maystro, Shopify legacy): check they still work this often. */
  check_interval_s: number;
}

export interface ClaimOptions {
  owner: string;
  now: Date;
  leaseSeconds: number;
  limit: number;
  policies: RefreshPolicy[];
  provider?: string;
  connectionId?: string;
  force?: boolean;
  /** Already handled by this invocation: not claimed again even if still due. */
  exclude?: string[];
}

/**
 * Claims connections due for a token refresh, with SKIP LOCKED and a lease,
 * so concurrent invocations never take the same connection. Due: the access
 * token is within its margin of expiry, or the refresh token within its margin
 * of an idle/rolling expiry, or a static credential is due its check, or an
 * `error` connection's next attempt has come; `force` claims regardless.
 */
export async function claimDueForRefresh(sql: Sql, o: ClaimOptions): Promise<ConnectionRow[]> {
  return await sql<ConnectionRow[]>`
    with policy as (
      select * from jsonb_to_recordset(${sql.json(o.policies as never)})
        as p(provider text, access_margin_s int, refresh_margin_s int, check_interval_s int)
    ), due as (
      select c.id
        from tether.connections c
        join policy p on p.provider = c.provider
       where c.status in ('active', 'error')
         and (c.lease_expires_at is null or c.lease_expires_at < ${o.now})
         and (${o.provider ?? null}::text is null or c.provider = ${o.provider ?? null})
         and (${o.connectionId ?? null}::uuid is null or c.id = ${o.connectionId ?? null})
         -- As text, not a JS array: on a fresh pooled connection postgres.js can bind an array
         -- before its array serializers are loaded, sending '' ("malformed array literal").
         and c.id <> all(string_to_array(${(o.exclude ?? []).join(",")}, ',')::uuid[])
         and (
           ${o.force ?? false}
           or (c.status = 'error' and coalesce(c.next_attempt_at, ${o.now}) <= ${o.now})
           or (c.status = 'active' and (
                 c.token_expires_at <= ${o.now}::timestamptz + make_interval(secs => p.access_margin_s)
              or c.refresh_token_expires_at <= ${o.now}::timestamptz + make_interval(secs => p.refresh_margin_s)
              or (c.token_expires_at is null and coalesce(c.last_token_refresh_at, '-infinity')
                    <= ${o.now}::timestamptz - make_interval(secs => p.check_interval_s))
           ))
         )
       order by coalesce(c.token_expires_at, c.next_attempt_at, c.created_at)
       limit ${o.limit}
       for update of c skip locked
    )
    update tether.connections c
       set lease_owner = ${o.owner},
           lease_expires_at = ${o.now}::timestamptz + make_interval(secs => ${o.leaseSeconds})
      from due
     where c.id = due.id
    returning c.*`;
}

/** Claims one connection for an on-demand refresh; undefined if another worker holds it. */
export async function claimConnection(
  sql: Sql,
  id: string,
  o: { owner: string; now: Date; leaseSeconds: number },
): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`
    update tether.connections
       set lease_owner = ${o.owner},
           lease_expires_at = ${o.now}::timestamptz + make_interval(secs => ${o.leaseSeconds})
     where id = ${id}
       and status in ('active', 'error')
       and (lease_expires_at is null or lease_expires_at < ${o.now})
    returning *`;
  return row;
}

export async function releaseLease(sql: Sql | Tx, id: string, owner: string): Promise<void> {
  await sql`
    update tether.connections set lease_owner = null, lease_expires_at = null
     where id = ${id} and lease_owner = ${owner}`;
}

export interface RefreshSuccess {
  now: Date;
  tokenExpiresAt: Date | null;
  refreshTokenExpiresAt: Date | null;
  refreshTokenRotated: boolean;
}

/** Records a successful refresh and releases the lease; status back to active. */
export async function recordRefreshSuccess(
  tx: Tx,
  id: string,
  owner: string,
  r: RefreshSuccess,
): Promise<void> {
  await tx`
    update tether.connections
       set status = 'active',
           token_expires_at = ${r.tokenExpiresAt},
           refresh_token_expires_at = coalesce(${r.refreshTokenExpiresAt}, refresh_token_expires_at),
           refresh_token_issued_at = case when ${r.refreshTokenRotated} then ${r.now}
                                          else refresh_token_issued_at end,
           last_token_refresh_at = ${r.now},
           consecutive_failures = 0,
           next_attempt_at = null,
           last_error = null,
           last_error_at = null,
           lease_owner = case when lease_owner = ${owner} then null else lease_owner end,
           lease_expires_at = case when lease_owner = ${owner} then null else lease_expires_at end,
           updated_at = now()
     where id = ${id}`;
}

/**
 * A refresh's whole outcome in one call (tether.record_token_refresh, migration
 * 20261209030000): under the connection's lock, if its credentials are still at `version`
 * (`StoredCredentials.version`), writes the new ones, records the refresh as recordRefreshSuccess
 * does (releasing the lease) and inserts the succeeded run, in one transaction. False, with nothing
 * written, if the credentials were replaced meanwhile.
 */
export async function recordRefresh(
  sql: Sql,
  id: string,
  owner: string,
  r: RefreshSuccess & { version: string; sealed: SealedCredentials; startedAt: Date },
): Promise<boolean> {
  const [row] = await sql<{ written: boolean }[]>`
    select tether.record_token_refresh(${id}, ${owner}, ${r.version}, ${
    sql.json(r.sealed as never)
  },
      ${r.now}, ${r.tokenExpiresAt}, ${r.refreshTokenExpiresAt}, ${r.refreshTokenRotated},
      ${r.startedAt}) as written`;
  return row!.written;
}

/**
 * Records a failed refresh and releases the lease. `error` backs off in SQL
 * (tether.backoff) and is retried by the sweep; `reauth_required` waits for a
 * person to reconnect.
 */
export async function recordRefreshFailure(
  sql: Sql | Tx,
  id: string,
  owner: string,
  f: { now: Date; status: "error" | "reauth_required"; error: string; retryAfterMs?: number },
): Promise<ConnectionRow> {
  const [row] = await sql<ConnectionRow[]>`
    update tether.connections
       set status = ${f.status},
           consecutive_failures = consecutive_failures + 1,
           next_attempt_at = case when ${f.status} = 'error'
             then ${f.now}::timestamptz + tether.backoff(consecutive_failures + 1,
                    make_interval(secs => ${(f.retryAfterMs ?? 0) / 1000}))
             else null end,
           last_error = ${f.error},
           last_error_at = ${f.now},
           lease_owner = case when lease_owner = ${owner} then null else lease_owner end,
           lease_expires_at = case when lease_owner = ${owner} then null else lease_expires_at end,
           updated_at = now()
     where id = ${id}
    returning *`;
  return row!;
}

/** A provider's connection with that external id (webhook routing). */
export async function connectionByExternalId(
  sql: Sql,
  provider: string,
  externalId: string,
): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`
    select * from tether.connections where provider = ${provider} and external_id = ${externalId}`;
  return row;
}

/** A provider's connection whose config[key] or external id is `value` (Shopify: the shop). */
export async function connectionByConfigOrExternalId(
  sql: Sql,
  provider: string,
  key: string,
  value: string,
): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`
    select * from tether.connections
     where provider = ${provider} and (config ->> ${key} = ${value} or external_id = ${value})
     limit 1`;
  return row;
}

/** Holds the connection's row until the transaction ends: its credentials change one writer at a time. */
export async function lockConnection(tx: Tx, id: string): Promise<void> {
  await tx`select 1 from tether.connections where id = ${id} for update`;
}

/**
 * Ends a connection on Tether's side, inside the caller's transaction (which holds its lock):
 * its credentials are deleted and its pending or running backfills cancelled; the connection is
 * then either kept as `disabled`, with its synced records, or deleted with everything that hangs
 * off it (records, cursors, runs, backfills: the foreign keys cascade).
 */
export async function endConnection(
  tx: Tx,
  id: string,
  o: { deleteRecords: boolean; now: Date; reason: string },
): Promise<void> {
  await tx`delete from tether.disconnect_requests where connection_id = ${id}`;
  await tx`delete from tether.credentials where connection_id = ${id}`;
  await tx`
    update tether.backfills
       set status = 'cancelled', finished_at = ${o.now}, lease_owner = null,
           lease_expires_at = null, next_attempt_at = null, updated_at = ${o.now}
     where connection_id = ${id} and status in ('pending', 'running')`;
  if (o.deleteRecords) {
    await tx`delete from tether.connections where id = ${id}`;
    return;
  }
  await tx`
    update tether.connections
       set status = 'disabled', lease_owner = null, lease_expires_at = null,
           next_attempt_at = null, consecutive_failures = 0, last_error = ${o.reason},
           last_error_at = ${o.now}, updated_at = ${o.now}
     where id = ${id}`;
}

export interface DisconnectRequest {
  connection_id: string;
  delete_records: boolean;
  revoke: boolean;
}

/** A disconnect recorded by disconnect_connection() in SQL, not done yet. */
export async function disconnectRequest(
  sql: Sql,
  id: string,
): Promise<DisconnectRequest | undefined> {
  const [row] = await sql<DisconnectRequest[]>`
    select connection_id, delete_records, revoke from tether.disconnect_requests where id = ${id}`;
  return row;
}
