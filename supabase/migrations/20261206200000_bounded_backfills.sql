-- Backfill ranges are bounded (issue #17, probe H2 and M3). create_backfill() checked that
-- range_start < range_end and that range_end is not in the future, but not that either bound is
-- finite or plausible: start_backfill(conn, 'orders', '-infinity', …) created a job that failed
-- every invocation, and while it was pending tether.connection_health failed for every caller
-- ("cannot subtract infinite timestamps"); a range in year 0001 failed every invocation on the
-- covered_within_range constraint. Now:
--   - tether.backfill_earliest_start() is the one lower bound (code: EARLIEST_BACKFILL_START in
--     functions-shared/jobs/backfill.ts, tests/reliability_test.ts checks they agree);
--   - create_backfill() refuses a non-finite bound, or one before that, naming the argument;
--   - backfills cannot hold a non-finite range (active ones a past version let in are failed);
--   - connection_health's backfill_percent is null rather than an error for any range;
--   - refusals quote a bad text argument cut to 40 characters (a 100 KB one was echoed whole).

create function tether.shown(value text) returns text
language sql immutable
set search_path = ''
as $$
  select case when length(value) <= 40 then value
              else left(value, 40) || format('… (%s characters)', length(value)) end
$$;
comment on function tether.shown(text) is
  'A text argument as an error message quotes it: whole up to 40 characters, cut beyond.';

create or replace function tether.check_provider(provider text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if provider is not null and not tether.is_known_provider(provider) then
    raise exception 'unknown provider "%"', tether.shown(provider)
      using hint = 'one of ' || (select string_agg(p.provider, ', ') from tether.providers() p)
                   || ', or null for all';
  end if;
  return provider;
end
$$;

create function tether.backfill_earliest_start() returns timestamptz
language sql immutable
set search_path = ''
as $$
  select timestamptz '2000-01-01T00:00:00Z'
$$;
comment on function tether.backfill_earliest_start() is
  'The earliest range_start a backfill accepts: 2000-01-01 UTC, before any of the providers (QuickBooks Online 2000s, Lightspeed 2005, Shopify 2006, ShipHero 2013, Maystro 2019) could hold a record. Equal to EARLIEST_BACKFILL_START in functions-shared/jobs/backfill.ts.';
revoke all on function tether.backfill_earliest_start() from public, anon, authenticated;

update tether.backfills
   set status = 'failed', finished_at = now(), lease_owner = null, lease_expires_at = null,
       next_attempt_at = null, updated_at = now(),
       last_error = 'the range is not finite: start a new backfill with finite bounds'
 where status in ('pending', 'running')
   and not (isfinite(range_start) and isfinite(range_end));
alter table tether.backfills
  add constraint range_is_finite check (isfinite(range_start) and isfinite(range_end)) not valid;

create or replace function tether.create_backfill(connection_id uuid, stream text,
  range_start timestamptz, range_end timestamptz) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  conn record;
  other record;
  new_id uuid;
  earliest constant timestamptz := tether.backfill_earliest_start();
  bound record;
begin
  if connection_id is null or stream is null or range_start is null or range_end is null then
    raise exception 'connection_id, stream, range_start and range_end are all required'
      using errcode = 'invalid_parameter_value',
            hint = 'select start_backfill(''<connection uuid>'', ''orders'', ''2026-01-29T00:00:00Z'', ''2026-01-31T23:59:59Z'')';
  end if;
  for bound in select * from (values ('range_start', range_start), ('range_end', range_end))
                 as b(name, value) loop
    if not isfinite(bound.value) or bound.value < earliest then
      raise exception '% (%) must be a time on or after %', bound.name, bound.value, earliest
        using errcode = 'invalid_parameter_value',
              hint = 'no provider holds records from before then; e.g. 2026-01-29T00:00:00Z';
    end if;
  end loop;
  -- Locks the connection: two starts on it at once are checked for overlap one after the other.
  select c.id, c.provider, c.name into conn
    from tether.connections c where c.id = create_backfill.connection_id for update;
  if not found then
    raise exception 'unknown connection %', connection_id
      using errcode = 'no_data_found',
            hint = 'select id, provider, name from tether.connection_health';
  end if;
  if not (stream = any(tether.backfill_streams(conn.provider))) then
    raise exception '% has no % stream', conn.provider, tether.shown(stream)
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
  'Validates a backfill request (finite bounds on or after backfill_earliest_start(), known connection, a stream its provider has, range_start < range_end, range_end not in the future, no overlap with a pending or running backfill of the same stream) and creates the job row, status pending. start_backfill() = this + triggering the backfill function.';

create or replace view tether.connection_health
with (security_invoker = true)
as
select
  c.id,
  c.provider,
  c.name,
  c.external_id,
  c.owner_id,
  c.status,
  c.token_expires_at,
  c.refresh_token_expires_at,
  c.last_token_refresh_at,
  c.consecutive_failures,
  c.next_attempt_at,
  c.last_error,
  c.last_error_at,
  (select s.last_synced_at from tether.sync_cursors s
    where s.connection_id = c.id and s.stream = 'orders') as orders_last_synced_at,
  (select s.last_synced_at from tether.sync_cursors s
    where s.connection_id = c.id and s.stream = 'customers') as customers_last_synced_at,
  b.id as backfill_id,
  b.stream as backfill_stream,
  b.status as backfill_status,
  b.windows_done as backfill_windows_done,
  b.records_count as backfill_records_count,
  -- Null, never an error, for a range it cannot measure (one row must not break the view).
  case when b.id is null
         or not (isfinite(b.range_start) and isfinite(b.range_end)
                 and isfinite(coalesce(b.covered_until, b.range_start)))
         or b.range_end <= b.range_start then null
       else round(100.0 * extract(epoch from (coalesce(b.covered_until, b.range_start) - b.range_start))
                  / extract(epoch from (b.range_end - b.range_start)), 1)
  end as backfill_percent,
  b.last_error as backfill_last_error
from tether.connections c
left join lateral (
  select * from tether.backfills bf
   where bf.connection_id = c.id and bf.status in ('pending', 'running')
   order by bf.created_at
   limit 1
) b on true;
