-- The SQL API: what pg_cron and people in the SQL editor call. Each call
-- reaches an Edge Function through pg_net with the URL and key kept in Vault,
-- and returns the pg_net request id; the function's own outcome lands in
-- tether.runs (and its HTTP answer in net._http_response).

create function tether.invoke_function(function_name text, body jsonb default '{}'::jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  functions_url text;
  service_key text;
begin
  select decrypted_secret into functions_url
    from vault.decrypted_secrets where name = 'tether_functions_url';
  select decrypted_secret into service_key
    from vault.decrypted_secrets where name = 'tether_service_key';
  if functions_url is null or service_key is null then
    raise exception 'Tether is not configured: Vault has no %',
      case when functions_url is null then 'tether_functions_url' else 'tether_service_key' end
      using hint = 'select vault.create_secret(''https://<project-ref>.supabase.co/functions/v1'', ''tether_functions_url''); '
                || 'select vault.create_secret(''<a secret API key>'', ''tether_service_key'');';
  end if;
  return net.http_post(
    url := rtrim(functions_url, '/') || '/' || function_name,
    body := coalesce(body, '{}'::jsonb),
    headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', service_key),
    timeout_milliseconds := 145000
  );
end
$$;
comment on function tether.invoke_function(text, jsonb) is
  'Calls a Tether Edge Function through pg_net with the URL and secret key stored in Vault (tether_functions_url, tether_service_key); returns the pg_net request id.';
revoke all on function tether.invoke_function(text, jsonb) from public, anon, authenticated;

create function tether.check_provider(provider text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if provider is not null
     and provider not in ('shiphero', 'shopify', 'lightspeed', 'quickbooks', 'maystro') then
    raise exception 'unknown provider "%"', provider
      using hint = 'one of shiphero, shopify, lightspeed, quickbooks, maystro, or null for all';
  end if;
  return provider;
end
$$;
comment on function tether.check_provider(text) is
  'Returns the provider name unchanged, or raises a clear error when it is not one Tether knows.';

-- Token refresh ---------------------------------------------------------------

create function public.refresh_tokens(provider text default null) returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_function('refresh-tokens',
    jsonb_strip_nulls(jsonb_build_object('provider', tether.check_provider(provider))))
$$;
comment on function public.refresh_tokens(text) is
  'Refreshes every connection whose token is due (of one provider, or all), through the refresh-tokens function. Returns the pg_net request id; outcomes are in tether.runs and tether.connection_health.';

create function public.refresh_shiphero_tokens() returns bigint
language sql security definer set search_path = ''
as $$ select public.refresh_tokens('shiphero') $$;
create function public.refresh_shopify_tokens() returns bigint
language sql security definer set search_path = ''
as $$ select public.refresh_tokens('shopify') $$;
create function public.refresh_lightspeed_tokens() returns bigint
language sql security definer set search_path = ''
as $$ select public.refresh_tokens('lightspeed') $$;
create function public.refresh_quickbooks_tokens() returns bigint
language sql security definer set search_path = ''
as $$ select public.refresh_tokens('quickbooks') $$;
create function public.refresh_maystro_tokens() returns bigint
language sql security definer set search_path = ''
as $$ select public.refresh_tokens('maystro') $$;
comment on function public.refresh_shiphero_tokens() is 'refresh_tokens(''shiphero'').';
comment on function public.refresh_shopify_tokens() is 'refresh_tokens(''shopify'').';
comment on function public.refresh_lightspeed_tokens() is 'refresh_tokens(''lightspeed'').';
comment on function public.refresh_quickbooks_tokens() is 'refresh_tokens(''quickbooks'').';
comment on function public.refresh_maystro_tokens() is 'refresh_tokens(''maystro'').';

revoke all on function public.refresh_tokens(text), public.refresh_shiphero_tokens(),
  public.refresh_shopify_tokens(), public.refresh_lightspeed_tokens(),
  public.refresh_quickbooks_tokens(), public.refresh_maystro_tokens()
  from public, anon, authenticated;

-- Failure bookkeeping -------------------------------------------------------------

create function tether.backoff(failures integer, retry_after interval default null)
returns interval
language sql immutable
set search_path = ''
as $$
  -- 30 s, 1 min, 2 min, … capped at 6 h; never sooner than the provider asked.
  select greatest(
    least(interval '30 seconds' * power(2, least(greatest(failures, 1) - 1, 16)), interval '6 hours'),
    coalesce(retry_after, interval '0')
  )
$$;
comment on function tether.backoff(integer, interval) is
  'How long to wait before the next attempt after the given number of consecutive failures: exponential from 30 s, capped at 6 h, at least retry_after.';

-- Housekeeping --------------------------------------------------------------------

create function tether.cleanup(keep interval default interval '14 days') returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  runs_deleted bigint;
  responses_deleted bigint;
  cron_deleted bigint := 0;
begin
  delete from tether.runs where started_at < now() - keep;
  get diagnostics runs_deleted = row_count;
  delete from net._http_response where created < now() - keep;
  get diagnostics responses_deleted = row_count;
  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where start_time < now() - $1' using keep;
    get diagnostics cron_deleted = row_count;
  end if;
  return jsonb_build_object('runs', runs_deleted, 'http_responses', responses_deleted,
                            'cron_job_run_details', cron_deleted);
end
$$;
comment on function tether.cleanup(interval) is
  'Deletes run records, pg_net responses and pg_cron run details older than keep (default 14 days); scheduled daily by sql/schedules.sql.';
revoke all on function tether.cleanup(interval) from public, anon, authenticated;
