-- Sync fan-out: one call of sync_orders() or sync_customers() starts as many invocations of its
-- function as the streams due now need, a few at most, instead of always one.
--
-- One invocation syncs streams until its CPU budget is spent (TETHER_CPU_BUDGET_MS, 1.5 s), each
-- stream's run charged TETHER_CPU_MS_PER_SYNC_RUN (12 ms) where the Edge Runtime cannot measure
-- CPU: about 125 streams. With thousands of connections more streams fall due each tick than one
-- invocation can take, so the call counts them and asks for ceil(due / 125) invocations, at most
-- 8: the invocations claim their streams with SKIP LOCKED and never sync one twice. pg_net sends a
-- project's requests from one queue, one batch at a time (docs/architecture.md "Invocations"), so
-- a tick asks it for a handful of calls, never one per connection: npm run bench -- scale and
-- docs/capacity.md give the figures.

create function tether.sync_streams_per_invocation() returns integer
language sql immutable
set search_path = ''
as $$ select 125 $$;
comment on function tether.sync_streams_per_invocation() is
  'Streams one sync invocation is counted on: floor(TETHER_CPU_BUDGET_MS / TETHER_CPU_MS_PER_SYNC_RUN) at their defaults (1500 / 12), tests/scale_test.ts keeps them equal.';

create function tether.sync_invocations_per_call() returns integer
language sql immutable
set search_path = ''
as $$ select 8 $$;
comment on function tether.sync_invocations_per_call() is
  'The most invocations one sync_orders() or sync_customers() call starts (docs/capacity.md: what to change past it).';

-- When a stream's sync is due by the clock: its backoff has passed and it has not caught up
-- within its connection's sync_interval. The one definition: the claim
-- (functions-shared/db/sync_cursors.ts, claimDueStream) and the count below both ask it. A plain
-- expression with no settings of its own, so the planner inlines it into either query.
create function tether.sync_is_due(next_attempt_at timestamptz, last_synced_at timestamptz,
  sync_interval interval, at timestamptz) returns boolean
language sql immutable parallel safe
return coalesce(next_attempt_at, '-infinity') <= at
   and coalesce(last_synced_at, '-infinity') <= at - sync_interval;
comment on function tether.sync_is_due(timestamptz, timestamptz, interval, timestamptz) is
  'True when a stream''s backoff has passed at `at` and it has not caught up within sync_interval: the due rule of the sync claim and of tether.due_streams().';

create function tether.due_streams(stream text, provider text default null) returns bigint
language sql stable
set search_path = ''
as $$
  -- A connection whose stream has no cursor row yet is due (the claim creates the row first).
  select count(*)
    from tether.connections c
    left join tether.sync_cursors s on s.connection_id = c.id and s.stream = due_streams.stream
   where c.status = 'active'
     and due_streams.stream = any(tether.backfill_streams(c.provider))
     and (due_streams.provider is null or c.provider = due_streams.provider)
     and (s.connection_id is null or (
           (s.lease_expires_at is null or s.lease_expires_at < now())
       and tether.sync_is_due(s.next_attempt_at, s.last_synced_at, c.sync_interval, now())))
$$;
comment on function tether.due_streams(text, text) is
  'How many (connection, stream) pairs of the stream are due a sync now (of one provider, or all).';
revoke all on function tether.due_streams(text, text) from public, anon, authenticated;

create function tether.invoke_sync(function_name text, stream text, provider text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  due bigint := tether.due_streams(stream, provider);
  calls integer := least(tether.sync_invocations_per_call(),
    greatest(1, ceil(due::numeric / tether.sync_streams_per_invocation())::integer));
  body jsonb := jsonb_strip_nulls(jsonb_build_object('provider', provider));
  first_id bigint;
  request_id bigint;
begin
  for i in 1..calls loop
    request_id := tether.invoke_function(function_name, body);
    if first_id is null then
      first_id := request_id;
    end if;
  end loop;
  return first_id;
end
$$;
comment on function tether.invoke_sync(text, text, text) is
  'Calls a sync function once per tether.sync_streams_per_invocation() due streams (at least once, at most tether.sync_invocations_per_call() times). Returns the first pg_net request id.';
revoke all on function tether.invoke_sync(text, text, text) from public, anon, authenticated;

-- Redefined (same signature and contract): they now fan out.
create or replace function public.sync_orders(provider text default null) returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_sync('sync-orders', 'orders', tether.check_provider(provider))
$$;
comment on function public.sync_orders(text) is
  'Syncs the orders of every connection that is due (not synced within its sync_interval), of one provider or all, through the sync-orders function: one invocation per 125 due streams, at most 8. Returns the first pg_net request id; outcomes are in tether.runs (kind sync) and tether.connection_health.';

create or replace function public.sync_customers(provider text default null) returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_sync('sync-customers', 'customers', tether.check_provider(provider))
$$;
comment on function public.sync_customers(text) is
  'Syncs the customers of every connection that is due, of one provider or all, through the sync-customers function: one invocation per 125 due streams, at most 8. Returns the first pg_net request id.';

revoke all on function public.sync_orders(text), public.sync_customers(text)
  from public, anon, authenticated;
