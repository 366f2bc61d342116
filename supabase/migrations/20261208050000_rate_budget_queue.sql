-- Rate budgets: a request waiting for the budget keeps its place.
--
-- take_rate_budget charged nothing when the model lacked the cost and told the caller how long to
-- wait before asking again; meanwhile any cheaper request (a proxied call of 52 points beside two
-- syncs' pages of 252 on one Shopify connection) could take what had refilled, and the dear one
-- waited again, without end: `npm run bench -- pacing` saw a sync-customers invocation starved
-- past the 150 s the Edge Runtime allows. Now every request is charged when it asks (the level may
-- go below zero: what the requests already promised a slot owe) and told when its turn comes,
-- the moment the bucket, refilled, again holds its cost and the reserve. The requests of a
-- connection go in the order they asked, and none is overtaken. Same signature and result:
-- create or replace.
create or replace function tether.take_rate_budget(connection_id uuid, cost float8,
  capacity float8, restore_per_second float8, reserve float8)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  b tether.rate_budgets := tether.rate_budget_level(connection_id, capacity, restore_per_second);
  need float8 := least(cost, b.capacity);
  -- What must be left once this request is charged: the reserve, for other clients.
  keep float8 := least(b.capacity * reserve, b.capacity - need);
  missing float8 := keep - (b.level - need);
  wait_ms float8 := greatest(
    coalesce(extract(epoch from b.blocked_until - b.at) * 1000, 0),
    case when missing > 0 then missing / b.restore_per_second * 1000 else 0 end);
begin
  update tether.rate_budgets r set level = b.level - need, at = b.at
   where r.connection_id = take_rate_budget.connection_id;
  return ceil(greatest(wait_ms, 0))::integer;
end
$$;
comment on function tether.take_rate_budget(uuid, float8, float8, float8, float8) is
  'Pacer.take across instances: charges the cost and returns the ms until the request''s turn (0: now); requests go in the order they asked.';
revoke all on function tether.take_rate_budget(uuid, float8, float8, float8, float8)
  from public, anon, authenticated;

-- A report lowers the level to what the provider says is left, but never forgives what the
-- requests waiting for their turn owe (a level below zero): the provider has not seen them yet.
-- Otherwise as before; same signature: create or replace.
create or replace function tether.adjust_rate_budget(connection_id uuid, capacity float8,
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
  if available is not null then b.level := least(b.level, greatest(0, available)); end if;
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
