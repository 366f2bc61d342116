-- Tether's pg_cron schedules. Idempotent: run it again after an upgrade.
-- Run it in the database where pg_cron lives (on Supabase: postgres), after
-- the migrations and the two Vault secrets (see README, "Deploy").
--
-- cron.schedule(job_name, …) updates a job of that name in place: its
-- "on conflict on constraint jobname_username_uniq do update" sets schedule
-- and command (and, from pg_cron 1.6, database) only (citusdata/pg_cron
-- src/job_metadata.c, ScheduleCronJob, v1.4.2 and v1.6.4). So rerunning this
-- file keeps each job's jobid (and with it its cron.job_run_details history)
-- and keeps a job an operator paused with cron.alter_job(…, active := false)
-- paused.

-- pg_cron as Supabase documents it (https://supabase.com/docs/guides/cron/install);
-- the migrations enable it too, this keeps the file runnable on its own.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;

-- A tether-* job this version no longer schedules (renamed or retired) goes.
select cron.unschedule(jobid)
  from cron.job
 where jobname like 'tether-%'
   and jobname not in ('tether-refresh-tokens', 'tether-sync-orders', 'tether-sync-customers',
                       'tether-continue-backfills', 'tether-cleanup',
                       'tether-process-webhook-events', 'tether-deliver-notifications');

-- The refresh sweep: connections whose access token is within its provider's
-- margin of expiry, whose refresh token nears its idle or rolling expiry, or
-- whose retry time has come. The shortest margin is 10 minutes (Lightspeed);
-- every minute keeps each tick's share small: one invocation refreshes about
-- 190 connections (TETHER_CPU_MS_PER_REFRESH), a minute's due refreshes of
-- 10,000 connections are about 70 (docs/capacity.md).
select cron.schedule('tether-refresh-tokens', '* * * * *', $$select public.refresh_tokens()$$);

-- Incremental sync: each call syncs the (connection, stream) pairs not synced
-- within their connection's sync_interval (default 10 minutes), one invocation
-- per 125 due pairs, at most 8 (tether.invoke_sync). Every minute: a tenth of
-- the streams falls due each tick, so each stream is at most 11 minutes behind
-- and a tick asks pg_net for 1 + ceil(due / 125) per sync + 1 calls (refresh,
-- the two syncs, the webhook sweep; plus running backfills): docs/capacity.md.
select cron.schedule('tether-sync-orders', '* * * * *', $$select public.sync_orders()$$);
select cron.schedule('tether-sync-customers', '* * * * *', $$select public.sync_customers()$$);

-- Backfills continue themselves through pg_net; this is the safety net that
-- picks up any job whose lease lapsed (a crashed worker, a lost self-call, a
-- retry after backoff): a handful of jobs a minute.
select cron.schedule('tether-continue-backfills', '* * * * *',
  $$select public.continue_backfills()$$);

-- Housekeeping: run records, pg_net responses, pg_cron run details, notification events and
-- their deliveries older than 14 days.
select cron.schedule('tether-cleanup', '17 3 * * *',
  $$select tether.cleanup(), tether.cleanup_notifications()$$);

-- Webhook events whose processing failed are kept and retried with backoff: every minute, the
-- webhooks function takes the ones whose next attempt has come.
select cron.schedule('tether-process-webhook-events', '* * * * *',
  $$select public.process_webhook_events()$$);

-- Notifications: the dispatcher reads pg_net's answers to the attempts sent, schedules retries
-- (or disables a subscriber failing for a day) and sends what is due; first attempts go out at
-- once from the transaction that emits them. Two index probes when nothing is due.
select cron.schedule('tether-deliver-notifications', '* * * * *',
  $$select tether.deliver_notifications()$$);
