-- Functions reached through pg_net answer at once (issue #13, docs/architecture.md "Invocations").
--
-- The real pg_net worker sends a batch of up to pg_net.batch_size (200) requests and waits for the
-- whole batch before it sends the next (supabase/pg_net v0.20.4, src/worker.c): a call that stays
-- open while its function works holds every other pg_net request of the project behind it. So the SQL API now asks for an
-- asynchronous answer (`Prefer: respond-async`, RFC 7240): the function checks the caller and the
-- body, records the invocation here, answers 202 with its id within milliseconds and does the work
-- after the answer (EdgeRuntime.waitUntil). The outcome lands in this row (and, as before, in
-- tether.runs). A call without the header (the dashboard's invoke button, the CLI) still gets the
-- result in its answer.

create table tether.invocations (
  id uuid primary key default gen_random_uuid(),
  function_name text not null,
  status text not null default 'running',
  accepted_at timestamptz not null default now(),
  finished_at timestamptz,
  result jsonb,
  error text,
  constraint invocations_status_is_valid check (status in ('running', 'succeeded', 'failed'))
);
create index invocations_accepted_idx on tether.invocations (accepted_at);
comment on table tether.invocations is
  'One row per asynchronous function call (the SQL API''s calls through pg_net): accepted with a 202 carrying its id, then running, then succeeded with the job''s result or failed with its error.';

alter table tether.invocations enable row level security;
revoke all on tether.invocations from public, anon, authenticated;
grant all on tether.invocations to service_role;

create or replace function tether.invoke_function(function_name text, body jsonb default '{}'::jsonb)
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
  -- The function answers 202 within milliseconds; 2 s covers a cold start.
  return net.http_post(
    url := rtrim(functions_url, '/') || '/' || function_name,
    body := coalesce(body, '{}'::jsonb),
    headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', service_key,
                                  'Prefer', 'respond-async'),
    timeout_milliseconds := 2000
  );
end
$$;
comment on function tether.invoke_function(text, jsonb) is
  'Calls a Tether Edge Function through pg_net with the URL and secret key stored in Vault (tether_functions_url, tether_service_key), asking for an asynchronous answer: the function answers 202 with an invocation id (tether.invocations) and works after answering. Returns the pg_net request id.';
revoke all on function tether.invoke_function(text, jsonb) from public, anon, authenticated;

create or replace function tether.cleanup(keep interval default interval '14 days') returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  runs_deleted bigint;
  invocations_deleted bigint;
  responses_deleted bigint;
  cron_deleted bigint := 0;
begin
  delete from tether.runs where started_at < now() - keep;
  get diagnostics runs_deleted = row_count;
  delete from tether.invocations where accepted_at < now() - keep;
  get diagnostics invocations_deleted = row_count;
  delete from net._http_response where created < now() - keep;
  get diagnostics responses_deleted = row_count;
  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where start_time < now() - $1' using keep;
    get diagnostics cron_deleted = row_count;
  end if;
  return jsonb_build_object('runs', runs_deleted, 'invocations', invocations_deleted,
                            'http_responses', responses_deleted,
                            'cron_job_run_details', cron_deleted);
end
$$;
comment on function tether.cleanup(interval) is
  'Deletes run records, invocations, pg_net responses and pg_cron run details older than keep (default 14 days); scheduled daily by sql/schedules.sql. pg_net itself keeps responses for pg_net.ttl (6 hours).';
revoke all on function tether.cleanup(interval) from public, anon, authenticated;
