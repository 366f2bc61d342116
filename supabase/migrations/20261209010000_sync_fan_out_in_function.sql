-- Sync fan-out in the function: one call of sync_orders() or sync_customers() sends ONE pg_net
-- request, whatever the number of due streams; the body asks for as many invocations as they need
-- ({"invocations": n}, counted as before: ceil(due / tether.sync_streams_per_invocation()), at
-- least 1, at most tether.sync_invocations_per_call()), and the invocation that receives it starts
-- the other n - 1 itself (functions-shared/jobs/sync.ts, "Fan-out"). A tick therefore asks pg_net
-- for 1 + 1 + 1 + 1 calls (refresh, orders, customers, webhook sweep) plus backfills, at any
-- number of connections (docs/capacity.md).
--
-- Redefined (same signatures, same return contract: the pg_net request id): tether.invoke_sync.
-- Only the comments of sync_orders() and sync_customers() change.

create or replace function tether.invoke_sync(function_name text, stream text, provider text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  due bigint := tether.due_streams(stream, provider);
  calls integer := least(tether.sync_invocations_per_call(),
    greatest(1, ceil(due::numeric / tether.sync_streams_per_invocation())::integer));
begin
  return tether.invoke_function(function_name,
    jsonb_strip_nulls(jsonb_build_object('provider', provider, 'invocations', calls)));
end
$$;
comment on function tether.invoke_sync(text, text, text) is
  'Calls a sync function with one pg_net request asking for one invocation per tether.sync_streams_per_invocation() due streams (at least one, at most tether.sync_invocations_per_call()); the invocation that receives it starts the others. Returns the pg_net request id.';
revoke all on function tether.invoke_sync(text, text, text) from public, anon, authenticated;

comment on function tether.sync_invocations_per_call() is
  'The most invocations one sync_orders() or sync_customers() call stands for (one pg_net request; the first invocation starts the others; the function refuses more than 32, SYNC_INVOCATIONS_MAX). docs/capacity.md: what to change past it.';

comment on function public.sync_orders(text) is
  'Syncs the orders of every connection that is due (not synced within its sync_interval), of one provider or all, through the sync-orders function: one pg_net request, asking for one invocation per 125 due streams (at most 8), which the first invocation starts. Returns the pg_net request id; outcomes are in tether.invocations, tether.runs (kind sync) and tether.connection_health.';

comment on function public.sync_customers(text) is
  'Syncs the customers of every connection that is due, of one provider or all, through the sync-customers function: one pg_net request, asking for one invocation per 125 due streams (at most 8), which the first invocation starts. Returns the pg_net request id.';
