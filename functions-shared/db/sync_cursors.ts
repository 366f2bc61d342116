// tether.sync_cursors: which (connection, stream) pairs are due a sync, claimed with SKIP LOCKED
// and a lease so concurrent invocations never sync the same pair; the cursor checkpoint written
// with each page; and the outcome of each run (caught up, or failed with backoff computed in SQL).
import type { Sql, Tx } from "./client.ts";

export interface ClaimedStream {
  connection_id: string;
  stream: string;
  cursor: string | null;
  last_synced_at: Date | null;
  consecutive_failures: number;
}

export interface ClaimStreamOptions {
  stream: string;
  owner: string;
  now: Date;
  leaseSeconds: number;
  /** Providers that have this stream. */
  providers: readonly string[];
  provider?: string;
  connectionId?: string;
  /** Due or not, and past any backoff. */
  force?: boolean;
  /** Already taken by this invocation. */
  exclude?: string[];
}

/** Creates the (connection, stream) pairs of connections that have none yet. */
export async function ensureStreams(
  sql: Sql,
  o: { stream: string; providers: readonly string[] },
): Promise<void> {
  // Lists travel as text: see claimDueForRefresh on postgres.js array binding.
  await sql`
    insert into tether.sync_cursors (connection_id, stream)
    select c.id, ${o.stream}
      from tether.connections c
     where c.provider = any(string_to_array(${o.providers.join(",")}, ','))
       and not exists (select 1 from tether.sync_cursors s
                        where s.connection_id = c.id and s.stream = ${o.stream})
    on conflict do nothing`;
}

/**
 * Claims one (connection, stream) pair that is due: its connection is active, no live lease holds
 * it, it has not caught up within the connection's sync_interval, and any backoff has passed
 * (`force` skips both time checks).
 */
export async function claimDueStream(
  sql: Sql,
  o: ClaimStreamOptions,
): Promise<ClaimedStream | undefined> {
  const providers = o.providers.join(",");
  const exclude = (o.exclude ?? []).join(",");
  const [row] = await sql<ClaimedStream[]>`
    with due as (
      select s.connection_id, s.stream
        from tether.sync_cursors s
        join tether.connections c on c.id = s.connection_id
       where s.stream = ${o.stream}
         and c.status = 'active'
         and c.provider = any(string_to_array(${providers}, ','))
         and (${o.provider ?? null}::text is null or c.provider = ${o.provider ?? null})
         and (${o.connectionId ?? null}::uuid is null or c.id = ${o.connectionId ?? null})
         and s.connection_id <> all(string_to_array(${exclude}, ',')::uuid[])
         and (s.lease_expires_at is null or s.lease_expires_at < ${o.now})
         and (${o.force ?? false} or
              tether.sync_is_due(s.next_attempt_at, s.last_synced_at, c.sync_interval, ${o.now}))
       order by s.last_synced_at nulls first
       limit 1
       for update of s skip locked
    )
    update tether.sync_cursors s
       set lease_owner = ${o.owner},
           lease_expires_at = ${o.now}::timestamptz + make_interval(secs => ${o.leaseSeconds}),
           last_run_started_at = ${o.now},
           updated_at = now()
      from due
     where s.connection_id = due.connection_id and s.stream = due.stream
    returning s.connection_id, s.stream, s.cursor, s.last_synced_at, s.consecutive_failures`;
  return row;
}

export interface SkippedStream {
  connection_id: string;
  name: string;
  provider: string;
  status: string;
  reason: string;
}

/** Connections that would be synced but cannot be: reauth_required, disabled, or failing refresh. */
export async function unsyncableConnections(
  sql: Sql,
  o: { providers: readonly string[]; provider?: string; connectionId?: string },
): Promise<SkippedStream[]> {
  return await sql<SkippedStream[]>`
    select c.id as connection_id, c.name, c.provider, c.status,
           case c.status
             when 'reauth_required' then 'the provider rejected the credentials: reconnect it'
             when 'disabled' then 'the connection is disabled'
             else 'its token refresh is failing (retrying with backoff): ' || coalesce(c.last_error, '')
           end as reason
      from tether.connections c
     where c.status <> 'active'
       and c.provider = any(string_to_array(${o.providers.join(",")}, ','))
       and (${o.provider ?? null}::text is null or c.provider = ${o.provider ?? null})
       and (${o.connectionId ?? null}::uuid is null or c.id = ${o.connectionId ?? null})
     order by c.name`;
}

/**
 * Active connections whose stream another worker holds (its lease not yet lapsed): a sync in
 * progress, or one that died and whose lease lapses at `lease_expires_at`. Not synced by this run.
 */
export async function leasedStreams(
  sql: Sql,
  o: {
    stream: string;
    providers: readonly string[];
    provider?: string;
    connectionId?: string;
    owner: string;
    now: Date;
  },
): Promise<SkippedStream[]> {
  return await sql<SkippedStream[]>`
    select c.id as connection_id, c.name, c.provider, c.status,
           'another worker holds this stream until '
             || to_char(s.lease_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
             || ': a sync in progress, or one that died; try again after that' as reason
      from tether.sync_cursors s
      join tether.connections c on c.id = s.connection_id
     where s.stream = ${o.stream}
       and c.status = 'active'
       and s.lease_owner is distinct from ${o.owner}
       and s.lease_expires_at >= ${o.now}
       and c.provider = any(string_to_array(${o.providers.join(",")}, ','))
       and (${o.provider ?? null}::text is null or c.provider = ${o.provider ?? null})
       and (${o.connectionId ?? null}::uuid is null or c.id = ${o.connectionId ?? null})
     order by c.name`;
}

/** The run ended: caught up (last_synced_at = its start) or not, failures cleared, lease released. */
export async function finishStream(
  sql: Sql | Tx,
  key: { connectionId: string; stream: string; owner: string },
  o: { caughtUpAt: Date | null },
): Promise<void> {
  await sql`
    update tether.sync_cursors
       set last_synced_at = coalesce(${o.caughtUpAt}, last_synced_at),
           consecutive_failures = 0,
           next_attempt_at = null,
           last_error = null,
           last_error_at = null,
           lease_owner = null,
           lease_expires_at = null,
           updated_at = now()
     where connection_id = ${key.connectionId} and stream = ${key.stream}
       and lease_owner = ${key.owner}`;
}

/** Gives a claimed pair back untouched. */
export async function releaseStream(
  sql: Sql,
  key: { connectionId: string; stream: string; owner: string },
): Promise<void> {
  await sql`
    update tether.sync_cursors set lease_owner = null, lease_expires_at = null
     where connection_id = ${key.connectionId} and stream = ${key.stream}
       and lease_owner = ${key.owner}`;
}

/** The run failed: back off (tether.backoff, at least `retryAfterMs`), say why, release the lease. */
export async function failStream(
  sql: Sql,
  key: { connectionId: string; stream: string; owner: string },
  f: { now: Date; error: string; retryAfterMs?: number },
): Promise<void> {
  await sql`
    update tether.sync_cursors
       set consecutive_failures = consecutive_failures + 1,
           next_attempt_at = ${f.now}::timestamptz + tether.backoff(consecutive_failures + 1,
             make_interval(secs => ${(f.retryAfterMs ?? 0) / 1000})),
           last_error = ${f.error},
           last_error_at = ${f.now},
           lease_owner = null,
           lease_expires_at = null,
           updated_at = now()
     where connection_id = ${key.connectionId} and stream = ${key.stream}
       and lease_owner = ${key.owner}`;
}
