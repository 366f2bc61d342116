-- pg_cron's calls carry a key of their own (issue #13 item 10, README "Security model").
--
-- net.http_post queues each request, headers included, in net.http_request_queue, and pg_net
-- grants that table to PUBLIC (supabase/pg_net sql/pg_net.sql): on Supabase any role that can run
-- SQL (anon and authenticated through a function of theirs, any user a project adds) may read a
-- queued request's headers. Until now they carried the secret API key from Vault
-- (tether_service_key), which opens the whole project. They now carry the invoke key: Vault secret
-- tether_invoke_key, equal to the functions' TETHER_INVOKE_KEY, in the x-tether-invoke-key header.
-- Only the functions pg_cron reaches accept it (refresh-tokens, sync-orders, sync-customers,
-- backfill, webhooks/_sweep); it is no Supabase API key, so the Data API, Auth, Storage and
-- `connect` refuse it. Whoever reads it can start Tether's jobs early, nothing more.
--
-- tether_service_key is not read any more, and not fallen back to: a fallback would keep sending
-- the service key to the readable queue on every project that never set the new secret, and
-- pg_cron's warnings reach nobody. Tether's copy of it is deleted from Vault here; until
-- tether_invoke_key exists (`npm run deploy` creates both halves) each call fails with the error
-- below, in cron.job_run_details.

create or replace function tether.invoke_function(function_name text, body jsonb default '{}'::jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  functions_url text;
  invoke_key text;
begin
  select decrypted_secret into functions_url
    from vault.decrypted_secrets where name = 'tether_functions_url';
  select decrypted_secret into invoke_key
    from vault.decrypted_secrets where name = 'tether_invoke_key';
  if functions_url is null then
    raise exception 'Tether is not configured: Vault has no tether_functions_url'
      using hint = 'select vault.create_secret(''https://<project-ref>.supabase.co/functions/v1'', ''tether_functions_url'');';
  end if;
  if invoke_key is null then
    raise exception 'Tether is not configured: Vault has no tether_invoke_key'
      using hint = 'select vault.create_secret(''<the functions'' TETHER_INVOKE_KEY secret>'', ''tether_invoke_key''); '
                || 'a new key: select encode(extensions.gen_random_bytes(32), ''hex''); set it on both sides '
                || '(supabase secrets set TETHER_INVOKE_KEY=<key>), never a Supabase API key.';
  end if;
  -- The function answers 202 within milliseconds; 2 s covers a cold start.
  return net.http_post(
    url := rtrim(functions_url, '/') || '/' || function_name,
    body := coalesce(body, '{}'::jsonb),
    headers := jsonb_build_object('Content-Type', 'application/json',
                                  'x-tether-invoke-key', invoke_key,
                                  'Prefer', 'respond-async'),
    timeout_milliseconds := 2000
  );
end
$$;
comment on function tether.invoke_function(text, jsonb) is
  'Calls a Tether Edge Function through pg_net with the URL and the invoke key stored in Vault (tether_functions_url, tether_invoke_key: never a Supabase API key, pg_net''s queue is readable by every role), asking for an asynchronous answer: the function answers 202 with an invocation id (tether.invocations) and works after answering. Returns the pg_net request id.';
revoke all on function tether.invoke_function(text, jsonb) from public, anon, authenticated;

delete from vault.secrets where name = 'tether_service_key';
