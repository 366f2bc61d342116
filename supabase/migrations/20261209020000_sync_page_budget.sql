-- One rate-budget correction per provider page: a Shopify page's unused charge (reserved less
-- actualQueryCost) and its reported level now travel in one adjust_rate_budget call, where they
-- took two statements, each two round trips (`npm run bench -- sync`: a fifth of a page's CPU
-- went to the rate budget's statements). For that the refund is applied first, then the report
-- lowers the level: a report is taken after its request was charged what it actually cost, so it
-- caps the refunded level, as the two calls in that order did. A call carrying one kind of
-- correction (every caller before this one) is unchanged. Same signature: create or replace.
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
  -- The bucket's size, as the provider states it (Shopify's maximumAvailable, Lightspeed's limit).
  if reported_capacity > 0 then b.capacity := reported_capacity; end if;
  if reported_restore > 0 then b.restore_per_second := reported_restore; end if;
  b.level := least(b.level, b.capacity);
  if refund is not null then b.level := least(b.capacity, b.level + greatest(0, refund)); end if;
  -- A report is as old as the request it answered: other instances may have spent since, so it
  -- may lower the level, never raise it (the refill does that).
  if available is not null then b.level := least(b.level, greatest(0, available)); end if;
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
  'Pacer.observe / refund / backOff across instances: takes the bucket size the provider reported, gives back an unused charge, lowers the level to what it reported (in that order, when one call carries both), or blocks the budget for a throttle''s wait.';
