-- Backfills (issue #5): a date-range re-sync as a job row that continues across
-- function invocations by itself. start_backfill() validates and creates the
-- job and triggers the backfill function; the function claims it with a lease,
-- reads the range window by window and checkpoints after every page;
-- continue_backfills() (every minute, sql/schedules.sql) picks up any job whose
-- lease has lapsed. What each backfill wrote is kept in tether.backfill_records.

alter table tether.backfills
  add column consecutive_failures integer not null default 0,
  add column next_attempt_at timestamptz,
  add constraint backfill_failures_not_negative check (consecutive_failures >= 0);
comment on column tether.backfills.checkpoint is
  'Where the job resumes: {"window_start", "window_end", "cursor"} — the window being read and the provider cursor of its last stored page (null = the window''s start). Written in the same transaction as each page''s records.';
comment on column tether.backfills.window_seconds is
  'Size of the next window: halved after a slow or throttled window, doubled after a fast one (1 hour to 30 days).';
comment on column tether.backfills.covered_until is
  'Every window before this instant is done; percent = (covered_until - range_start) / (range_end - range_start).';
comment on column tether.backfills.records_count is
  'Distinct records this backfill stored or found already current (rows of tether.backfill_records).';
comment on column tether.backfills.consecutive_failures is
  'Failed invocations in a row; after 10 the job is failed. Reset by every stored page.';
comment on column tether.backfills.next_attempt_at is
  'After a failed invocation: continue_backfills() does not pick the job up before this time (tether.backoff).';

create index backfills_active_idx on tether.backfills (status, lease_expires_at)
  where status in ('pending', 'running');

create table tether.backfill_records (
  backfill_id uuid not null references tether.backfills (id) on delete cascade,
  stream text not null,
  external_id text not null,
  primary key (backfill_id, stream, external_id),
  constraint stream_is_valid check (stream in ('orders', 'customers'))
);
comment on table tether.backfill_records is
  'Every record a backfill stored or found already current in its range, once (join to tether.orders / tether.customers on the backfill''s connection_id and external_id). Written in the same transaction as the records.';
alter table tether.backfill_records enable row level security;
revoke all on tether.backfill_records from public, anon, authenticated;
grant all on tether.backfill_records to service_role;
grant select on tether.backfill_records to authenticated;
create policy backfill_records_owner_read on tether.backfill_records
  for select to authenticated using (exists (
    select 1 from tether.backfills b
     where b.id = backfill_id and tether.owns_connection(b.connection_id)));

-- Concurrent writers -------------------------------------------------------------
-- tether.upsert_orders and tether.upsert_customers write each page in
-- external_id order, so concurrent writers (backfill, sync, webhooks) cannot
-- deadlock. This migration used to re-create both functions whole to add that
-- `order by`; it now lives in their definitions in 20261122000200_sync.sql.
-- That gives the same schema: this migration always runs after 000200, so a
-- fresh database ends with the same functions, and a database that applied the
-- old pair already holds these final definitions (supabase/schema.sql shows them).

-- Validation and creation: one source of truth for the SQL API and the function -----

create function tether.backfill_streams(provider text) returns text[]
language sql immutable
set search_path = ''
as $$
  select case provider
    when 'shiphero' then array['orders']
    when 'shopify' then array['orders', 'customers']
    when 'lightspeed' then array['orders', 'customers']
    when 'quickbooks' then array['orders', 'customers']
    when 'maystro' then array['orders']
    else array[]::text[]
  end
$$;
comment on function tether.backfill_streams(text) is
  'The streams a provider has (and a backfill can re-read).';
revoke all on function tether.backfill_streams(text) from public, anon, authenticated;

create function tether.create_backfill(connection_id uuid, stream text, range_start timestamptz,
  range_end timestamptz) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  conn record;
  other record;
  new_id uuid;
begin
  if connection_id is null or stream is null or range_start is null or range_end is null then
    raise exception 'connection_id, stream, range_start and range_end are all required'
      using errcode = 'invalid_parameter_value',
            hint = 'select start_backfill(''<connection uuid>'', ''orders'', ''2026-01-29T00:00:00Z'', ''2026-01-31T23:59:59Z'')';
  end if;
  -- Locks the connection: two starts on it at once are checked for overlap one after the other.
  select c.id, c.provider, c.name into conn
    from tether.connections c where c.id = create_backfill.connection_id for update;
  if not found then
    raise exception 'unknown connection %', connection_id
      using errcode = 'no_data_found',
            hint = 'select id, provider, name from tether.connection_health';
  end if;
  if not (stream = any(tether.backfill_streams(conn.provider))) then
    raise exception '% has no % stream', conn.provider, stream
      using errcode = 'invalid_parameter_value',
            hint = format('streams of %s: %s', conn.provider,
                          array_to_string(tether.backfill_streams(conn.provider), ', '));
  end if;
  if range_start >= range_end then
    raise exception 'range_start (%) must be before range_end (%)', range_start, range_end
      using errcode = 'invalid_parameter_value',
            hint = 'the range is [range_start, range_end): e.g. 2026-01-29T00:00:00Z to 2026-01-31T23:59:59Z';
  end if;
  if range_end > now() then
    raise exception 'range_end (%) is in the future', range_end
      using errcode = 'invalid_parameter_value',
            hint = 'a backfill re-reads what already happened; the scheduled sync keeps up with the present. End the range at now() or earlier.';
  end if;
  select b.id, b.range_start, b.range_end, b.status into other
    from tether.backfills b
   where b.connection_id = create_backfill.connection_id and b.stream = create_backfill.stream
     and b.status in ('pending', 'running')
     and b.range_start < create_backfill.range_end and create_backfill.range_start < b.range_end
   limit 1;
  if found then
    raise exception 'backfill % (% to %, %) is already running on this connection''s % and overlaps this range',
      other.id, other.range_start, other.range_end, other.status, stream
      using errcode = 'exclusion_violation',
            hint = format('wait for it to finish, or cancel it: select cancel_backfill(%L)', other.id);
  end if;
  insert into tether.backfills (connection_id, stream, range_start, range_end, status)
  values (create_backfill.connection_id, create_backfill.stream, range_start, range_end, 'pending')
  returning id into new_id;
  return new_id;
end
$$;
comment on function tether.create_backfill(uuid, text, timestamptz, timestamptz) is
  'Validates a backfill request (known connection, a stream its provider has, range_start < range_end, range_end not in the future, no overlap with a pending or running backfill of the same stream) and creates the job row, status pending. start_backfill() = this + triggering the backfill function.';
revoke all on function tether.create_backfill(uuid, text, timestamptz, timestamptz)
  from public, anon, authenticated;

-- The SQL API ------------------------------------------------------------------------

create function public.start_backfill(connection_id uuid, stream text, range_start timestamptz,
  range_end timestamptz) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_id uuid;
begin
  new_id := tether.create_backfill(connection_id, stream, range_start, range_end);
  perform tether.invoke_function('backfill', jsonb_build_object('backfill_id', new_id));
  return new_id;
end
$$;
comment on function public.start_backfill(uuid, text, timestamptz, timestamptz) is
  'Re-syncs one stream of one connection for records last updated in [range_start, range_end), through the backfill function, across as many invocations as it takes. Returns the backfill id; progress in tether.backfills and tether.connection_health, what it wrote in tether.backfill_records.';

create function public.cancel_backfill(backfill_id uuid) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_status text;
begin
  select b.status into current_status
    from tether.backfills b where b.id = cancel_backfill.backfill_id for update;
  if not found then
    raise exception 'unknown backfill %', backfill_id
      using errcode = 'no_data_found',
            hint = 'select id, connection_id, stream, status from tether.backfills order by created_at desc';
  end if;
  if current_status not in ('pending', 'running') then
    return current_status;
  end if;
  update tether.backfills
     set status = 'cancelled', finished_at = now(), lease_owner = null, lease_expires_at = null,
         next_attempt_at = null, updated_at = now()
   where id = cancel_backfill.backfill_id;
  return 'cancelled';
end
$$;
comment on function public.cancel_backfill(uuid) is
  'Cancels a pending or running backfill: the worker stops at its next page; everything already written stays. Returns the status (cancelled, or the final status it already had).';

create function public.continue_backfills() returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  job record;
  n integer := 0;
begin
  for job in
    select b.id from tether.backfills b
     where b.status in ('pending', 'running')
       and (b.lease_expires_at is null or b.lease_expires_at < now())
       and coalesce(b.next_attempt_at, '-infinity') <= now()
     order by b.created_at
     limit 5
  loop
    perform tether.invoke_function('backfill', jsonb_build_object('backfill_id', job.id));
    n := n + 1;
  end loop;
  return n;
end
$$;
comment on function public.continue_backfills() is
  'The safety net, scheduled every minute: triggers the backfill function for up to 5 pending or running backfills that no live lease holds (a crashed or timed-out worker, a lost self-invocation, a retry after backoff). Returns how many it triggered.';

revoke all on function public.start_backfill(uuid, text, timestamptz, timestamptz),
  public.cancel_backfill(uuid), public.continue_backfills()
  from public, anon, authenticated;
