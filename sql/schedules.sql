-- Tether's pg_cron schedules. Idempotent: cron.schedule(name, …) updates a job of that name in
-- place (same jobid, so its run history in cron.job_run_details stays joined to it), so rerunning
-- this file after an upgrade is always safe. A job an operator paused stays paused: which ones
-- are is remembered first and restored at the end (pg_cron 1.4 keeps `active` on an update;
-- later versions may reset it).
-- Run it in the database where pg_cron lives (on Supabase: postgres), after
-- the migrations and the two Vault secrets (see README, "Deploy").

create temporary table tether_paused_jobs as
  select jobname from cron.job where jobname like 'tether-%' and not active;

-- The refresh sweep: connections whose access token is within its provider's
-- margin of expiry, whose refresh token nears its idle or rolling expiry, or
-- whose retry time has come. The shortest margin is 10 minutes (Lightspeed),
-- so every 5 minutes catches every connection in time.
select cron.schedule('tether-refresh-tokens', '*/5 * * * *', $$select public.refresh_tokens()$$);

-- Incremental sync: each call syncs the (connection, stream) pairs not synced
-- within their connection's sync_interval (default 10 minutes), so a 5-minute
-- tick keeps every stream at most 15 minutes behind. Customers run 2 minutes
-- after orders to spread the load.
select cron.schedule('tether-sync-orders', '*/5 * * * *', $$select public.sync_orders()$$);
select cron.schedule('tether-sync-customers', '2-59/5 * * * *', $$select public.sync_customers()$$);

-- Backfills continue themselves through pg_net; this is the safety net that
-- picks up any job whose lease lapsed (a crashed worker, a lost self-call, a
-- retry after backoff): a handful of jobs a minute.
select cron.schedule('tether-continue-backfills', '* * * * *',
  $$select public.continue_backfills()$$);

-- Housekeeping: run records, pg_net responses and pg_cron run details older than 14 days.
select cron.schedule('tether-cleanup', '17 3 * * *', $$select tether.cleanup()$$);

-- Webhook events whose processing failed are kept and retried with backoff: every minute, the
-- webhooks function takes the ones whose next attempt has come.
select cron.schedule('tether-process-webhook-events', '* * * * *',
  $$select public.process_webhook_events()$$);

-- Paused before: paused again.
select cron.alter_job(j.jobid, active := false)
  from cron.job j join tether_paused_jobs p using (jobname);
drop table tether_paused_jobs;
