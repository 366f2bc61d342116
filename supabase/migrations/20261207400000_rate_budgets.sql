-- One rate budget per connection, shared by every function instance that calls its provider.
--
-- Each Edge Function runs in its own isolate (and a function in several at once), so a pacer
-- held in memory sees only its own calls: a sync and a proxied call of the user's own code would
-- each think the whole bucket theirs, and together be throttled. The pacers of deployed
-- functions keep the bucket's model here instead (functions-shared/db/rate_budgets.ts): the same
-- arithmetic as functions-shared/providers/pacing.ts, one row per connection, taken under its row
-- lock.

create table tether.rate_budgets (
  connection_id uuid primary key references tether.connections (id) on delete cascade,
  -- The bucket: as the adapter's facts say until a provider's report says otherwise.
  capacity double precision not null,
  restore_per_second double precision not null,
  -- What the model holds at `at` (points, credits or requests: the provider's unit).
  level double precision not null,
  at timestamptz not null,
  -- A throttle's Retry-After: nothing goes before it.
  blocked_until timestamptz
);
comment on table tether.rate_budgets is
  'Per connection, the rate-limit bucket its provider keeps, as Tether models it: shared by the syncs, backfills, webhook re-fetches and proxied calls of every function instance, so none throttles another.';
alter table tether.rate_budgets enable row level security;
revoke all on tether.rate_budgets from public, anon, authenticated;
grant all on tether.rate_budgets to service_role;

-- The level refilled to now (at most capacity), under the row lock; a missing row is a full bucket
-- of the caller's size (the adapter's facts).
create function tether.rate_budget_level(connection_id uuid, capacity float8,
  restore_per_second float8)
returns tether.rate_budgets
language plpgsql
set search_path = ''
as $$
declare
  b tether.rate_budgets;
  now timestamptz := clock_timestamp();
begin
  insert into tether.rate_budgets as r (connection_id, capacity, restore_per_second, level, at)
  values (rate_budget_level.connection_id, rate_budget_level.capacity,
          rate_budget_level.restore_per_second, rate_budget_level.capacity, now)
  on conflict on constraint rate_budgets_pkey do nothing;
  select * into b from tether.rate_budgets r
   where r.connection_id = rate_budget_level.connection_id for update;
  b.level := least(b.capacity,
    b.level + greatest(0, extract(epoch from now - b.at)) * b.restore_per_second);
  b.at := greatest(b.at, now);
  return b;
end
$$;
comment on function tether.rate_budget_level(uuid, float8, float8) is
  'The connection''s rate budget refilled to now, its row locked for the caller''s transaction.';

-- Charges `cost` when the model has it (its capacity and restore rate are the row's: what a
-- provider reported to any instance, else the facts the row was created with) (keeping `reserve` of the bucket for other clients) and
-- returns 0; otherwise charges nothing and returns the milliseconds to wait before asking again.
create function tether.take_rate_budget(connection_id uuid, cost float8, capacity float8,
  restore_per_second float8, reserve float8)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  b tether.rate_budgets := tether.rate_budget_level(connection_id, capacity, restore_per_second);
  need float8 := least(cost, b.capacity);
  missing float8 := need + least(b.capacity * reserve, b.capacity - need) - b.level;
  wait_ms float8 := greatest(
    coalesce(extract(epoch from b.blocked_until - b.at) * 1000, 0),
    case when missing > 0 then missing / b.restore_per_second * 1000 else 0 end);
begin
  if wait_ms <= 0 then b.level := b.level - need; end if;
  update tether.rate_budgets r set level = b.level, at = b.at
   where r.connection_id = take_rate_budget.connection_id;
  return ceil(greatest(wait_ms, 0))::integer;
end
$$;
comment on function tether.take_rate_budget(uuid, float8, float8, float8, float8) is
  'Pacer.take across instances: 0 when the cost was charged, else the ms to wait and ask again.';

-- What a provider reported (available), gave back (refund) or asked for (back_off_ms): the
-- corrections of Pacer.observe / refund / backOff, made safe for many writers.
create function tether.adjust_rate_budget(connection_id uuid, capacity float8,
  restore_per_second float8, reserve float8, available float8 default null,
  refund float8 default null, back_off_ms float8 default null,
  reported_capacity float8 default null, reported_restore float8 default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  b tether.rate_budgets := tether.rate_budget_level(connection_id, capacity, restore_per_second);
begin
  -- A report is as old as the request it answered: other instances may have spent since, so it
  -- may lower the level, never raise it (the refill does that).
  -- The bucket's size, as the provider states it (Shopify's maximumAvailable, Lightspeed's limit).
  if reported_capacity > 0 then b.capacity := reported_capacity; end if;
  if reported_restore > 0 then b.restore_per_second := reported_restore; end if;
  b.level := least(b.level, b.capacity);
  if available is not null then b.level := greatest(0, least(b.level, available)); end if;
  if refund is not null then b.level := least(b.capacity, b.level + greatest(0, refund)); end if;
  if back_off_ms is not null then
    b.level := least(b.level, b.capacity * reserve + 1);
    b.blocked_until := greatest(coalesce(b.blocked_until, b.at),
      b.at + make_interval(secs => back_off_ms / 1000));
  end if;
  update tether.rate_budgets r
     set capacity = b.capacity, restore_per_second = b.restore_per_second, level = b.level,
         at = b.at, blocked_until = b.blocked_until
   where r.connection_id = adjust_rate_budget.connection_id;
end
$$;
comment on function tether.adjust_rate_budget(uuid, float8, float8, float8, float8, float8, float8, float8, float8) is
  'Pacer.observe / refund / backOff across instances: takes the bucket size the provider reported, lowers the level to what it reported, gives back an unused charge, or blocks the budget for a throttle''s wait.';

revoke all on function tether.rate_budget_level(uuid, float8, float8) from public, anon, authenticated;
revoke all on function tether.take_rate_budget(uuid, float8, float8, float8, float8)
  from public, anon, authenticated;
revoke all on function tether.adjust_rate_budget(uuid, float8, float8, float8, float8, float8, float8, float8, float8)
  from public, anon, authenticated;
