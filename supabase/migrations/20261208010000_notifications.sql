-- Notifications (docs/architecture.md "Notifications"; README "Notifications").
--
-- Subscribers (tether.subscriptions) are told, by a signed HTTP POST, when a sync or backfill run
-- wrote changes, when a connection's status changes, and when a backfill ends. The events are
-- emitted by triggers on tether.runs, tether.connections and tether.backfills, so every path that
-- writes those rows (the functions, the sweep, the SQL API, a person in the SQL editor) emits them
-- in the transaction that makes the change; a transaction that rolls back emits nothing.
--
-- The format is Standard Webhooks 1.0.0 (github.com/standard-webhooks/standard-webhooks,
-- spec/standard-webhooks.md): a JSON body {"type", "timestamp", "data"}, the headers webhook-id
-- (the same on every retry), webhook-timestamp (integer unix seconds of the attempt) and
-- webhook-signature "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>" keyed by the
-- base64-decoded secret, the secret being "whsec_" + base64 of random bytes (at least 24; 32
-- here). Bodies are sent through pg_net, which sends convert_to(body::text, 'UTF8') of the jsonb
-- it is given (supabase/pg_net sql/pg_net.sql, http_post): the text signed here is exactly that.
--
-- Deliveries are retried on the spec's example schedule ("Deliverability and reliability":
-- immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), at the dispatcher's next
-- tick (tether.deliver_notifications(), every minute by pg_cron) once due. A subscriber whose
-- deliveries have all failed for disable_after (1 day) is disabled with the reason; 410 Gone
-- disables it at once and a Retry-After (in seconds) longer than the schedule's delay is waited
-- (the spec's status code handling).

create extension if not exists pgcrypto with schema extensions;

-- 1. Tables ---------------------------------------------------------------------------------------

create table tether.notification_settings (
  singleton boolean primary key default true check (singleton),
  retry_schedule interval[] not null default array[
    '5 seconds', '5 minutes', '30 minutes', '2 hours', '5 hours', '10 hours', '14 hours',
    '20 hours', '24 hours']::interval[],
  disable_after interval not null default interval '1 day',
  -- pg_net sends a batch and waits for all of it (supabase/pg_net src/worker.c), so a slow
  -- subscriber holds Tether's own calls back: 5 s, below the spec's 15-30 s recommendation.
  timeout_milliseconds integer not null default 5000,
  -- Deliveries sent per dispatcher tick at most.
  batch_size integer not null default 50,
  constraint timeout_is_sane check (timeout_milliseconds between 500 and 60000),
  constraint batch_is_positive check (batch_size between 1 and 1000)
);
insert into tether.notification_settings default values;
comment on table tether.notification_settings is
  'One row: the retry schedule (the delay after each failed attempt; the spec''s example), how long a subscriber may fail before it is disabled, the request timeout, and the deliveries sent per dispatcher tick.';

create function tether.notification_event_types() returns text[]
language sql immutable
set search_path = ''
as $$ select array['run.changes', 'connection.status_changed', 'backfill.ended'] $$;
comment on function tether.notification_event_types() is
  'The event types a subscription can ask for (a public contract: docs/architecture.md).';

create table tether.subscriptions (
  id uuid primary key default gen_random_uuid(),
  url text not null,
  event_types text[] not null,
  -- Null: every connection's events. Set: only the events of the connections this user owns
  -- (tether.connections.owner_id), and the user reads the subscription through RLS.
  owner_id uuid,
  description text not null default '',
  -- The Standard Webhooks secret lives in Vault (vault.secrets, named tether_subscription_<id>),
  -- encrypted at rest like tether_invoke_key; this is its id. Never readable by anon or
  -- authenticated (Vault grants them nothing).
  secret_id uuid not null,
  enabled boolean not null default true,
  disabled_reason text,
  disabled_at timestamptz,
  -- The first failed attempt since the last success: the subscriber has failed since then.
  failing_since timestamptz,
  last_delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint url_is_http check (url ~ '^https?://[^\s]+$'),
  constraint event_types_are_known check (
    cardinality(event_types) > 0 and event_types <@ tether.notification_event_types()),
  constraint disabled_says_why check (enabled or disabled_reason is not null)
);
create index subscriptions_enabled_idx on tether.subscriptions (enabled) where enabled;
comment on table tether.subscriptions is
  'Notification subscribers: an URL, the event types it wants, its signing secret (in Vault, by id), whether it is enabled and, when not, why. Create with tether.subscribe(), which returns the secret once.';

create table tether.notification_events (
  id bigint generated always as identity primary key,
  -- webhook-id: unique per event, the same on every retry and for every subscriber.
  message_id text not null unique default 'msg_' || replace(gen_random_uuid()::text, '-', ''),
  type text not null,
  connection_id uuid,
  -- The body, {"type", "timestamp", "data"}. A run.changes event gets data.feed_position when it
  -- is first sent (the feed ids are given at publishing): `pending` holds what that needs.
  payload jsonb not null,
  pending jsonb,
  created_at timestamptz not null default now()
);
comment on table tether.notification_events is
  'One row per event emitted to at least one subscriber: its webhook-id (message_id) and its body.';

create table tether.notification_deliveries (
  id bigint generated always as identity primary key,
  event_id bigint not null references tether.notification_events (id) on delete cascade,
  subscription_id uuid not null references tether.subscriptions (id) on delete cascade,
  attempt integer not null,
  status text not null default 'scheduled',
  due_at timestamptz not null default now(),
  sent_at timestamptz,
  request_id bigint,
  status_code integer,
  response_excerpt text,
  error text,
  -- After a failed attempt: when the next one is due (null: no more attempts).
  next_attempt_at timestamptz,
  finished_at timestamptz,
  constraint status_is_valid
    check (status in ('scheduled', 'sent', 'succeeded', 'failed', 'cancelled')),
  constraint attempt_is_positive check (attempt >= 1)
);
create index notification_deliveries_due_idx on tether.notification_deliveries (due_at)
  where status = 'scheduled';
create index notification_deliveries_sent_idx on tether.notification_deliveries (request_id)
  where status = 'sent';
create index notification_deliveries_subscription_idx
  on tether.notification_deliveries (subscription_id, id desc);
create index notification_deliveries_event_idx on tether.notification_deliveries (event_id);
comment on table tether.notification_deliveries is
  'One row per delivery attempt of an event to a subscriber: scheduled (due at due_at), sent (request_id in pg_net), then succeeded (2xx) or failed (status code or error, response excerpt, next_attempt_at of the retry), or cancelled (subscriber disabled or deleted).';

-- Where a sync or backfill run started in the change feed (the highest seq then), so its end can
-- count what it wrote. Written only while someone subscribes to run.changes.
create table tether.run_feed_marks (
  run_id bigint primary key references tether.runs (id) on delete cascade,
  seq_start bigint not null
);
comment on table tether.run_feed_marks is
  'Where a running sync or backfill run started in the change feed (the highest tether.changes seq then): its end counts the changes above it for run.changes. Written only while someone subscribes to run.changes; removed when the run ends.';

alter table tether.notification_settings enable row level security;
alter table tether.subscriptions enable row level security;
alter table tether.notification_events enable row level security;
alter table tether.notification_deliveries enable row level security;
alter table tether.run_feed_marks enable row level security;
revoke all on tether.notification_settings, tether.subscriptions, tether.notification_events,
  tether.notification_deliveries, tether.run_feed_marks from public, anon, authenticated;
grant all on tether.notification_settings, tether.subscriptions, tether.notification_events,
  tether.notification_deliveries, tether.run_feed_marks to service_role;

-- A user reads the subscriptions made for them and their deliveries (never a secret: that is in
-- Vault), as tether.connections' owner_read policy lets them read their connections.
grant select (id, url, event_types, owner_id, description, enabled, disabled_reason, disabled_at,
              failing_since, last_delivered_at, created_at, updated_at)
  on tether.subscriptions to authenticated;
create policy subscriptions_owner_read on tether.subscriptions
  for select to authenticated using (owner_id = (select auth.uid()));
grant select on tether.notification_deliveries to authenticated;
create policy notification_deliveries_owner_read on tether.notification_deliveries
  for select to authenticated using (exists (
    select 1 from tether.subscriptions s
     where s.id = subscription_id and s.owner_id = (select auth.uid())));

-- 2. Emitting -----------------------------------------------------------------------------------

-- Records an event for every enabled subscriber that wants it (and may see the connection), and
-- sends each delivery at once: pg_net sends after this transaction commits, nothing if it rolls
-- back. Nothing at all when nobody subscribes.
create function tether.emit_notification(event_type text, connection_id uuid, data jsonb,
  pending jsonb default null) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  owner uuid;
  event_id bigint;
  delivery record;
begin
  select c.owner_id into owner from tether.connections c where c.id = emit_notification.connection_id;
  if not exists (
    select 1 from tether.subscriptions s
     where s.enabled and event_type = any (s.event_types)
       and (s.owner_id is null or s.owner_id = owner)
  ) then
    return null;
  end if;
  insert into tether.notification_events (type, connection_id, payload, pending)
  values (event_type, connection_id,
          jsonb_build_object('type', event_type,
                             'timestamp', to_char(now() at time zone 'UTC',
                                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                             'data', data),
          pending)
  returning id into event_id;
  for delivery in
    insert into tether.notification_deliveries (event_id, subscription_id, attempt)
    select event_id, s.id, 1 from tether.subscriptions s
     where s.enabled and event_type = any (s.event_types)
       and (s.owner_id is null or s.owner_id = owner)
    returning id
  loop
    perform tether.send_delivery(delivery.id);
  end loop;
  return event_id;
end
$$;

-- run.changes: a sync or backfill run's start is marked in the feed; its end counts the changes
-- of its connection and stream written since, and emits them when there are any.
create function tether.mark_run_start() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status = 'running' and new.kind in ('sync', 'backfill')
     and exists (select 1 from tether.subscriptions s
                  where s.enabled and 'run.changes' = any (s.event_types)) then
    insert into tether.run_feed_marks (run_id, seq_start)
    values (new.id, coalesce((select max(c.seq) from tether.changes c), 0));
  end if;
  return null;
end
$$;

create function tether.notify_run_end() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  seq_start bigint;
  seq_end bigint;
  counts jsonb;
begin
  select m.seq_start into seq_start from tether.run_feed_marks m where m.run_id = new.id;
  if not found then
    return null;
  end if;
  delete from tether.run_feed_marks m where m.run_id = new.id;
  seq_end := coalesce((select max(c.seq) from tether.changes c), 0);
  select jsonb_build_object(
           'added', count(*) filter (where c.op = 'created'),
           'updated', count(*) filter (where c.op = 'updated'),
           'deleted', count(*) filter (where c.op in ('deleted', 'inactive')))
    into counts
    from tether.changes c
   where c.seq > seq_start and c.seq <= seq_end
     and c.connection_id = new.connection_id and c.stream = new.stream
  having count(*) > 0;
  if counts is null then
    return null;  -- a run that changed nothing notifies nothing
  end if;
  perform tether.emit_notification('run.changes', new.connection_id,
    jsonb_build_object(
      'connection_id', new.connection_id,
      'provider', (select c.provider from tether.connections c where c.id = new.connection_id),
      'run_id', new.id,
      'kind', new.kind,
      'stream', new.stream,
      'backfill_id', new.backfill_id,
      'status', new.status,
      'started_at', new.started_at,
      'finished_at', new.finished_at,
      'counts', jsonb_build_object(new.stream, counts),
      'feed_position', null),
    jsonb_build_object('stream', new.stream, 'seq_start', seq_start, 'seq_end', seq_end));
  return null;
end
$$;

create trigger runs_mark_feed after insert on tether.runs
  for each row execute function tether.mark_run_start();
create trigger runs_notify_end after update of status on tether.runs
  for each row when (old.status = 'running' and new.status <> 'running')
  execute function tether.notify_run_end();

-- connection.status_changed: once per change of status (a sweep that finds the connection in the
-- same state changes nothing, so says nothing). reauth_required is an alert: a person must act.
create function tether.notify_status_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform tether.emit_notification('connection.status_changed', new.id,
    jsonb_build_object(
      'connection_id', new.id,
      'provider', new.provider,
      'external_id', new.external_id,
      'name', new.name,
      'status', new.status,
      'previous_status', old.status,
      'alert', new.status = 'reauth_required',
      'error', case when new.status in ('error', 'reauth_required') then new.last_error end));
  return null;
end
$$;

create trigger connections_notify_status after update of status on tether.connections
  for each row when (old.status is distinct from new.status)
  execute function tether.notify_status_change();

-- backfill.ended: succeeded, failed or cancelled, with its counts.
create function tether.notify_backfill_end() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform tether.emit_notification('backfill.ended', new.connection_id,
    jsonb_build_object(
      'backfill_id', new.id,
      'connection_id', new.connection_id,
      'provider', (select c.provider from tether.connections c where c.id = new.connection_id),
      'stream', new.stream,
      'status', new.status,
      'range_start', new.range_start,
      'range_end', new.range_end,
      'records_count', new.records_count,
      'windows_done', new.windows_done,
      'started_at', new.started_at,
      'finished_at', new.finished_at,
      'error', new.last_error));
  return null;
end
$$;

create trigger backfills_notify_end after update of status on tether.backfills
  for each row when (old.status in ('pending', 'running')
                     and new.status in ('succeeded', 'failed', 'cancelled'))
  execute function tether.notify_backfill_end();

-- 3. Signing and sending --------------------------------------------------------------------------

-- The Standard Webhooks v1 signature of one attempt.
create function tether.webhook_signature(secret text, message_id text, unix_seconds bigint,
  body text) returns text
language sql immutable strict
set search_path = ''
as $$
  select 'v1,' || encode(
    extensions.hmac(convert_to(message_id || '.' || unix_seconds || '.' || body, 'UTF8'),
                    decode(substr(secret, length('whsec_') + 1), 'base64'), 'sha256'),
    'base64')
$$;
comment on function tether.webhook_signature(text, text, bigint, text) is
  'Standard Webhooks v1: "v1," + base64(HMAC-SHA256(key = base64-decoded secret after whsec_, "{message_id}.{unix_seconds}.{body}")).';

-- A run.changes event's feed position: the highest feed id among the changes it counted, once
-- they are all published (tether.publish_changes, the change feed's one publisher). Null while
-- one is not: the delivery waits for the next tick.
create function tether.finalize_event(event_id bigint) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  ev tether.notification_events;
  position bigint;
begin
  select * into ev from tether.notification_events e where e.id = event_id for update;
  if ev.pending is null then
    return ev.payload;
  end if;
  perform tether.publish_changes();
  if exists (select 1 from tether.changes c
              where c.seq > (ev.pending->>'seq_start')::bigint
                and c.seq <= (ev.pending->>'seq_end')::bigint
                and c.connection_id = ev.connection_id and c.stream = ev.pending->>'stream'
                and c.id is null) then
    return null;
  end if;
  select max(c.id) into position from tether.changes c
   where c.seq > (ev.pending->>'seq_start')::bigint and c.seq <= (ev.pending->>'seq_end')::bigint
     and c.connection_id = ev.connection_id and c.stream = ev.pending->>'stream';
  update tether.notification_events e
     set payload = jsonb_set(e.payload, '{data,feed_position}', to_jsonb(position)), pending = null
   where e.id = event_id
  returning payload into ev.payload;
  return ev.payload;
end
$$;

-- Signs and queues one scheduled attempt in pg_net. Returns false when it cannot go yet.
create function tether.send_delivery(delivery_id bigint) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  d record;
  body jsonb;
  secret text;
  unix_seconds bigint := floor(extract(epoch from clock_timestamp()))::bigint;
  settings tether.notification_settings;
begin
  select nd.id, nd.event_id, s.url, s.secret_id, e.message_id into d
    from tether.notification_deliveries nd
    join tether.subscriptions s on s.id = nd.subscription_id and s.enabled
    join tether.notification_events e on e.id = nd.event_id
   where nd.id = delivery_id and nd.status = 'scheduled';
  if not found then
    return false;
  end if;
  body := tether.finalize_event(d.event_id);
  if body is null then
    return false;
  end if;
  select ds.decrypted_secret into secret from vault.decrypted_secrets ds where ds.id = d.secret_id;
  if secret is null then
    update tether.notification_deliveries
       set status = 'failed', error = 'the subscription''s secret is missing from Vault',
           finished_at = now()
     where id = delivery_id;
    return false;
  end if;
  select * into settings from tether.notification_settings;
  update tether.notification_deliveries
     set status = 'sent', sent_at = clock_timestamp(),
         request_id = net.http_post(
           url := d.url,
           body := body,
           headers := jsonb_build_object(
             'Content-Type', 'application/json',
             'User-Agent', 'Tether-Notifications',
             'webhook-id', d.message_id,
             'webhook-timestamp', unix_seconds::text,
             'webhook-signature',
               tether.webhook_signature(secret, d.message_id, unix_seconds, body::text)),
           timeout_milliseconds := settings.timeout_milliseconds)
   where id = delivery_id;
  return true;
end
$$;

-- 4. The dispatcher ---------------------------------------------------------------------------------

create function tether.disable_failing_subscription(subscription_id uuid, reason text)
returns void
language sql
security definer
set search_path = ''
as $$
  update tether.subscriptions
     set enabled = false, disabled_reason = reason, disabled_at = now(), updated_at = now()
   where id = subscription_id and enabled;
  update tether.notification_deliveries
     set status = 'cancelled', error = 'the subscriber was disabled', finished_at = now()
   where subscription_id = disable_failing_subscription.subscription_id and status = 'scheduled';
$$;

-- Reads pg_net's answers to the attempts sent, records each outcome (a retry scheduled, or the
-- subscriber disabled), then sends the attempts that are due. Scheduled every minute; with
-- nothing sent or due it is two index probes.
create function tether.deliver_notifications() returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  settings tether.notification_settings;
  r record;
  ok boolean;
  reason text;
  delay interval;
  since timestamptz;
  succeeded integer := 0;
  failed integer := 0;
  retried integer := 0;
  disabled integer := 0;
  sent integer := 0;
  waiting integer := 0;
begin
  select * into settings from tether.notification_settings;
  for r in
    select nd.id, nd.event_id, nd.subscription_id, nd.attempt, nd.sent_at,
           resp.status_code, resp.content, resp.timed_out, resp.error_msg,
           resp.id is not null as answered,
           (select make_interval(secs => least(h.value::bigint, 86400))
              from jsonb_each_text(resp.headers) h
             where lower(h.key) = 'retry-after' and h.value ~ '^\s*\d{1,9}\s*$'
             limit 1) as retry_after
      from tether.notification_deliveries nd
      left join net._http_response resp on resp.id = nd.request_id
     where nd.status = 'sent'
       and (resp.id is not null
            -- pg_net keeps no request it lost (a worker restart): given up after 10 minutes.
            or nd.sent_at < now() - interval '10 minutes')
     order by nd.id
       for update of nd skip locked
  loop
    ok := r.status_code between 200 and 299;
    reason := case
      when not r.answered then 'no response recorded by pg_net'
      when r.timed_out then format('timed out after %s ms', settings.timeout_milliseconds)
      when r.status_code is null then coalesce(r.error_msg, 'request failed')
      else format('HTTP %s', r.status_code) end;
    if ok then
      update tether.notification_deliveries
         set status = 'succeeded', status_code = r.status_code,
             response_excerpt = left(r.content, 500), finished_at = now()
       where id = r.id;
      update tether.subscriptions
         set failing_since = null, last_delivered_at = now(), updated_at = now()
       where id = r.subscription_id;
      succeeded := succeeded + 1;
      continue;
    end if;
    failed := failed + 1;
    update tether.subscriptions s
       set failing_since = coalesce(s.failing_since, r.sent_at), updated_at = now()
     where s.id = r.subscription_id
    returning s.failing_since into since;
    -- The schedule's delay, or longer when the subscriber asked (Retry-After in seconds, at most a
    -- day: the spec's "should be taken into consideration").
    delay := case when settings.retry_schedule[r.attempt] is not null
                  then greatest(settings.retry_schedule[r.attempt], r.retry_after) end;
    update tether.notification_deliveries
       set status = 'failed', status_code = r.status_code, response_excerpt = left(r.content, 500),
           error = reason, finished_at = now(),
           next_attempt_at = now() + delay
     where id = r.id;
    if r.status_code = 410 or since <= now() - settings.disable_after then
      perform tether.disable_failing_subscription(r.subscription_id,
        case when r.status_code = 410
             then format('the subscriber answered 410 Gone at %s', now())
             else format('every delivery failed from %s to %s (disable_after %s); last: %s',
                         since, now(), settings.disable_after, reason) end);
      update tether.notification_deliveries set next_attempt_at = null where id = r.id;
      disabled := disabled + 1;
    elsif delay is not null then
      insert into tether.notification_deliveries (event_id, subscription_id, attempt, due_at)
      values (r.event_id, r.subscription_id, r.attempt + 1, now() + delay);
      retried := retried + 1;
    end if;
  end loop;

  for r in
    select nd.id from tether.notification_deliveries nd
      join tether.subscriptions s on s.id = nd.subscription_id and s.enabled
     where nd.status = 'scheduled' and nd.due_at <= now()
     order by nd.due_at, nd.id
     limit settings.batch_size
       for update of nd skip locked
  loop
    if tether.send_delivery(r.id) then
      sent := sent + 1;
    else
      waiting := waiting + 1;
    end if;
  end loop;
  return jsonb_build_object('succeeded', succeeded, 'failed', failed, 'retried', retried,
                            'disabled', disabled, 'sent', sent, 'waiting', waiting);
end
$$;
comment on function tether.deliver_notifications() is
  'The notification dispatcher, scheduled every minute (tether-deliver-notifications): records the outcome of the attempts pg_net answered (2xx succeeded; otherwise failed, the next attempt scheduled after retry_schedule[attempt], or the subscriber disabled when it has failed for disable_after or answered 410), then sends the due attempts. Returns the counts.';

-- 5. The SQL API --------------------------------------------------------------------------------

create function tether.subscribe(url text, event_types text[] default null,
  owner_id uuid default null, description text default '')
returns table (subscription_id uuid, secret text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
  new_secret text := 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64');
  types text[] := coalesce(subscribe.event_types, tether.notification_event_types());
begin
  if url is null or url !~ '^https?://[^\s]+$' then
    raise exception 'url must be an http(s) URL, not "%"', tether.shown(coalesce(url, 'null'));
  end if;
  if cardinality(types) = 0 or not types <@ tether.notification_event_types() then
    raise exception 'unknown event type in %', types
      using hint = 'one or more of ' || array_to_string(tether.notification_event_types(), ', ')
                   || ', or null for all';
  end if;
  insert into tether.subscriptions (id, url, event_types, owner_id, description, secret_id)
  values (new_id, url, types, owner_id, coalesce(description, ''),
          vault.create_secret(new_secret, 'tether_subscription_' || new_id,
                              'Tether: the Standard Webhooks signing secret of a subscription'));
  return query select new_id, new_secret;
end
$$;
comment on function tether.subscribe(text, text[], uuid, text) is
  'Subscribes an URL to notifications (event_types: null for all; owner_id: null for every connection, or only that user''s connections). Returns the subscription id and its Standard Webhooks secret (whsec_…), shown this once: it is kept in Vault.';

create function tether.list_subscriptions()
returns table (id uuid, url text, event_types text[], owner_id uuid, enabled boolean,
               disabled_reason text, failing_since timestamptz, last_delivered_at timestamptz,
               delivered_24h bigint, failed_24h bigint, scheduled bigint, created_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  select s.id, s.url, s.event_types, s.owner_id, s.enabled, s.disabled_reason, s.failing_since,
         s.last_delivered_at,
         count(d.id) filter (where d.status = 'succeeded' and d.finished_at > now() - interval '1 day'),
         count(d.id) filter (where d.status = 'failed' and d.finished_at > now() - interval '1 day'),
         count(d.id) filter (where d.status in ('scheduled', 'sent')),
         s.created_at
    from tether.subscriptions s
    left join tether.notification_deliveries d on d.subscription_id = s.id
   group by s.id
   order by s.created_at
$$;
comment on function tether.list_subscriptions() is
  'Every subscription with its state and its deliveries of the last day (succeeded, failed) and those still scheduled or in flight. Never the secret.';

create function tether.set_subscription_enabled(subscription_id uuid, enabled boolean,
  reason text default null) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  update tether.subscriptions s
     set enabled = set_subscription_enabled.enabled,
         disabled_reason = case when set_subscription_enabled.enabled then null
                                else coalesce(reason, 'disabled by hand') end,
         disabled_at = case when set_subscription_enabled.enabled then null else now() end,
         failing_since = null, updated_at = now()
   where s.id = subscription_id;
  if not found then
    raise exception 'unknown subscription %', subscription_id using errcode = 'no_data_found';
  end if;
  if not enabled then
    update tether.notification_deliveries d
       set status = 'cancelled', error = 'the subscriber was disabled', finished_at = now()
     where d.subscription_id = set_subscription_enabled.subscription_id and d.status = 'scheduled';
  end if;
  return enabled;
end
$$;
comment on function tether.set_subscription_enabled(uuid, boolean, text) is
  'Enables a subscription (clearing its failure state; events emitted while it was disabled are not sent) or disables it with a reason.';

create function tether.delete_subscription(subscription_id uuid) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  vault_id uuid;
begin
  delete from tether.subscriptions s where s.id = subscription_id returning s.secret_id into vault_id;
  if not found then
    return false;
  end if;
  delete from vault.secrets v where v.id = vault_id;
  return true;
end
$$;
comment on function tether.delete_subscription(uuid) is
  'Deletes a subscription, its deliveries and its secret in Vault. Returns whether it existed.';

create function tether.recent_deliveries(subscription uuid default null,
  max integer default 50)
returns table (id bigint, subscription_id uuid, url text, message_id text, type text,
               attempt integer, status text, due_at timestamptz, sent_at timestamptz,
               status_code integer, response_excerpt text, error text,
               next_attempt_at timestamptz, finished_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  select d.id, d.subscription_id, s.url, e.message_id, e.type, d.attempt, d.status, d.due_at,
         d.sent_at, d.status_code, d.response_excerpt, d.error, d.next_attempt_at, d.finished_at
    from tether.notification_deliveries d
    join tether.subscriptions s on s.id = d.subscription_id
    join tether.notification_events e on e.id = d.event_id
   where recent_deliveries.subscription is null
      or d.subscription_id = recent_deliveries.subscription
   order by d.id desc
   limit least(greatest(coalesce(max, 50), 1), 1000)
$$;
comment on function tether.recent_deliveries(uuid, integer) is
  'The latest delivery attempts, newest first (of one subscription, or all): event type, webhook-id, attempt, status, status code, response excerpt, error, next attempt.';

-- Retention: the daily cleanup calls this for deliveries and events older than its `keep`.
create function tether.cleanup_notifications(keep interval default interval '14 days')
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  n bigint;
begin
  delete from tether.notification_events e
   where e.created_at < now() - keep
     and not exists (select 1 from tether.notification_deliveries d
                      where d.event_id = e.id and d.status in ('scheduled', 'sent'));
  get diagnostics n = row_count;
  return n;
end
$$;
comment on function tether.cleanup_notifications(interval) is
  'Deletes notification events (and their deliveries) older than keep, except those with an attempt still scheduled or in flight. Scheduled daily with tether.cleanup() (tether-cleanup).';

revoke all on function tether.notification_event_types(), tether.emit_notification(text, uuid, jsonb, jsonb),
  tether.mark_run_start(), tether.notify_run_end(), tether.notify_status_change(),
  tether.notify_backfill_end(), tether.webhook_signature(text, text, bigint, text),
  tether.finalize_event(bigint), tether.send_delivery(bigint),
  tether.disable_failing_subscription(uuid, text), tether.deliver_notifications(),
  tether.subscribe(text, text[], uuid, text), tether.list_subscriptions(),
  tether.set_subscription_enabled(uuid, boolean, text), tether.delete_subscription(uuid),
  tether.recent_deliveries(uuid, integer), tether.cleanup_notifications(interval)
  from public, anon, authenticated;
grant execute on function tether.notification_event_types(), tether.deliver_notifications(),
  tether.subscribe(text, text[], uuid, text), tether.list_subscriptions(),
  tether.set_subscription_enabled(uuid, boolean, text), tether.delete_subscription(uuid),
  tether.recent_deliveries(uuid, integer)
  to service_role;
revoke all on all sequences in schema tether from public, anon, authenticated;

-- The Data API's door, as for the change feed: supabase-js rpc() with the service role.
create function public.tether_subscribe(url text, event_types text[] default null,
  owner_id uuid default null, description text default '')
returns table (subscription_id uuid, secret text)
language sql
set search_path = ''
as $$ select * from tether.subscribe($1, $2, $3, $4) $$;
comment on function public.tether_subscribe(text, text[], uuid, text) is
  'tether.subscribe for supabase-js rpc(''tether_subscribe'', {url, event_types}) with the service role.';

create function public.tether_list_subscriptions()
returns table (id uuid, url text, event_types text[], owner_id uuid, enabled boolean,
               disabled_reason text, failing_since timestamptz, last_delivered_at timestamptz,
               delivered_24h bigint, failed_24h bigint, scheduled bigint, created_at timestamptz)
language sql
set search_path = ''
as $$ select * from tether.list_subscriptions() $$;
comment on function public.tether_list_subscriptions() is
  'tether.list_subscriptions for supabase-js rpc() with the service role.';

create function public.tether_set_subscription_enabled(subscription_id uuid, enabled boolean,
  reason text default null) returns boolean
language sql
set search_path = ''
as $$ select tether.set_subscription_enabled($1, $2, $3) $$;
comment on function public.tether_set_subscription_enabled(uuid, boolean, text) is
  'tether.set_subscription_enabled for supabase-js rpc() with the service role.';

create function public.tether_delete_subscription(subscription_id uuid) returns boolean
language sql
set search_path = ''
as $$ select tether.delete_subscription($1) $$;
comment on function public.tether_delete_subscription(uuid) is
  'tether.delete_subscription for supabase-js rpc() with the service role.';

create function public.tether_recent_deliveries(subscription uuid default null,
  max integer default 50)
returns table (id bigint, subscription_id uuid, url text, message_id text, type text,
               attempt integer, status text, due_at timestamptz, sent_at timestamptz,
               status_code integer, response_excerpt text, error text,
               next_attempt_at timestamptz, finished_at timestamptz)
language sql
set search_path = ''
as $$ select * from tether.recent_deliveries($1, $2) $$;
comment on function public.tether_recent_deliveries(uuid, integer) is
  'tether.recent_deliveries for supabase-js rpc() with the service role.';

revoke all on function public.tether_subscribe(text, text[], uuid, text),
  public.tether_list_subscriptions(), public.tether_set_subscription_enabled(uuid, boolean, text),
  public.tether_delete_subscription(uuid), public.tether_recent_deliveries(uuid, integer)
  from public, anon, authenticated;
grant execute on function public.tether_subscribe(text, text[], uuid, text),
  public.tether_list_subscriptions(), public.tether_set_subscription_enabled(uuid, boolean, text),
  public.tether_delete_subscription(uuid), public.tether_recent_deliveries(uuid, integer)
  to service_role;
