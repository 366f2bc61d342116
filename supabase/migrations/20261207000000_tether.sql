-- Tether 0.1: the whole schema in one migration.
--
-- Tether's development migrations (2026-11-22 to 2026-12-07) were folded into this one before
-- the first release that could be deployed, so that every object is defined once, in its final
-- form, next to the others of its topic. From here on migrations are append-only: a change is a
-- new migration, and supabase/schema.sql (`npm run schema:dump`) shows what they all add up to.
-- docs/architecture.md describes the design; the sections below follow it:
--
--   1. Extensions            pg_cron, pg_net, Vault, enabled as Supabase documents
--   2. Provider catalog      tether.providers(): the one list constraints and functions ask
--   3. Tables                connections, credentials, sync state, backfills, runs, webhooks,
--                            OAuth states, invocations, and the synced orders and customers
--   4. Row-level security    owners read their connections and what hangs off them
--   5. Health                tether.connection_health
--   6. Internals             invoke_function, backoff, upserts, create_backfill, ...
--      Rate budgets          one provider budget per connection, shared by every function
--      The change feed       tether.changes, read_changes(), ack_changes(), and cleanup()
--   7. The SQL API           refresh_tokens(), sync_orders(), start_backfill(), ... in public
--   8. The Data API          tether_* views in public for signed-in users
--
-- The tables are not exposed to the Data API except through those views; the Edge Functions
-- reach them over a direct Postgres connection.

-- 1. Extensions ---------------------------------------------------------------------------------

-- pg_cron: "create extension pg_cron with schema pg_catalog; grant usage on schema cron to
-- postgres; grant all privileges on all tables in schema cron to postgres;"
-- (https://supabase.com/docs/guides/cron/install). pg_cron can only be created in the database
-- named by cron.database_name (its install script raises "can only create extension in database
-- …"), which on Supabase is `postgres`, where the migrations run. Elsewhere (the local stack's test
-- databases, cloned from a template) the schedules have no place to live, so this says so and
-- goes on.
do $$
begin
  if current_database() = current_setting('cron.database_name', true) then
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres;
    grant all privileges on all tables in schema cron to postgres;
  elsif current_setting('cron.database_name', true) is null then
    raise notice 'pg_cron is not loaded in this server: Tether''s schedules (sql/schedules.sql) need it';
  else
    raise notice 'pg_cron lives in database %, not %: Tether''s schedules are installed there',
      current_setting('cron.database_name', true), current_database();
  end if;
end
$$;

-- pg_net in the `extensions` schema, where the dashboard puts it (its objects live in `net`
-- either way; the extension's own schema is what the Security Advisor's "extension in public"
-- check reads). A project that enabled it without a schema has it registered in `public`; pg_net
-- is not relocatable, so it is created again in `extensions` (its queue and responses are unlogged
-- scratch tables). If something of the project's own depends on pg_net's objects, or the role may
-- not drop it, it stays where it is, with a warning.
do $$
declare
  home name;
begin
  select n.nspname into home
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'pg_net';
  if home is null then
    create extension pg_net with schema extensions;
  elsif home = 'public' then
    begin
      drop extension pg_net;
      create extension pg_net with schema extensions;
    exception when dependent_objects_still_exist or insufficient_privilege then
      raise warning 'pg_net stays registered in schema public: %', sqlerrm;
    end;
  end if;
end
$$;

-- Vault: enabled in every Supabase project; created here for a project or database where it is
-- not.
create extension if not exists supabase_vault;

create schema if not exists tether;
comment on schema tether is
  'Tether: commerce integration connections, token state, sync cursors, runs, backfills, webhooks and synced records.';
revoke all on schema tether from public, anon;
grant usage on schema tether to authenticated, service_role;

-- 2. Provider catalog ---------------------------------------------------------------------------
-- The provider lists SQL needs, said once, as the code's registry says them
-- (functions-shared/providers/registry.ts: PROVIDERS, each adapter's streams, OAUTH_PROVIDERS).
-- Every constraint and function below asks it; tests/provider_registry_test.ts fails when it and
-- the registry differ. Adding a provider is a migration that replaces tether.providers() and adds
-- its refresh_<provider>_tokens() wrapper. No revoke on these: they hold no data, and a check
-- constraint runs its function with the rights of whoever writes the row.

create function tether.providers()
returns table (provider text, streams text[], oauth boolean)
language sql immutable
set search_path = ''
as $$
  values ('shiphero', array['orders'], false),
         ('shopify', array['orders', 'customers'], true),
         ('lightspeed', array['orders', 'customers'], true),
         ('quickbooks', array['orders', 'customers'], true),
         ('maystro', array['orders'], false)
$$;
comment on function tether.providers() is
  'Every provider Tether knows, the streams it has and whether it connects by OAuth: the one list the constraints, check_provider() and backfill_streams() use. Equal to the registry in functions-shared/providers/registry.ts (tests/provider_registry_test.ts).';

create function tether.is_known_provider(provider text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p where p.provider = is_known_provider.provider)
$$;
comment on function tether.is_known_provider(text) is
  'True when tether.providers() lists the provider.';

create function tether.is_oauth_provider(provider text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p
                  where p.provider = is_oauth_provider.provider and p.oauth)
$$;
comment on function tether.is_oauth_provider(text) is
  'True when tether.providers() lists the provider as connecting by OAuth.';

create function tether.is_known_stream(stream text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p where is_known_stream.stream = any(p.streams))
$$;
comment on function tether.is_known_stream(text) is
  'True when some provider in tether.providers() has the stream.';

-- 3. Tables -------------------------------------------------------------------------------------

-- Connections

create table tether.connections (
  id uuid primary key default gen_random_uuid(),
  provider text not null,
  external_id text not null,
  name text not null,
  owner_id uuid,
  config jsonb not null default '{}'::jsonb,
  status text not null default 'active',
  token_expires_at timestamptz,
  refresh_token_expires_at timestamptz,
  refresh_token_issued_at timestamptz,
  last_token_refresh_at timestamptz,
  consecutive_failures integer not null default 0,
  next_attempt_at timestamptz,
  last_error text,
  last_error_at timestamptz,
  lease_owner text,
  lease_expires_at timestamptz,
  sync_interval interval not null default interval '10 minutes',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint provider_is_known check (tether.is_known_provider(provider)),
  constraint status_is_valid
    check (status in ('active', 'error', 'reauth_required', 'disabled')),
  constraint consecutive_failures_not_negative check (consecutive_failures >= 0),
  constraint config_is_object check (jsonb_typeof(config) = 'object'),
  constraint lease_is_complete check ((lease_owner is null) = (lease_expires_at is null)),
  constraint sync_interval_is_positive check (sync_interval > interval '0'),
  constraint connections_provider_external_id_key unique (provider, external_id)
);
create index connections_owner_idx on tether.connections (owner_id);
create index connections_due_idx on tether.connections (provider, status, next_attempt_at);
-- A Shopify delivery names its shop by domain (X-Shopify-Shop-Domain), kept in config.shop.
create index connections_shopify_shop_idx on tether.connections ((config ->> 'shop'))
  where provider = 'shopify';
comment on table tether.connections is
  'One row per connected provider account. status: active; error = transient failure, retried after next_attempt_at with backoff; reauth_required = the provider rejected the credentials and a person must reconnect; disabled.';
comment on column tether.connections.external_id is
  'The provider''s account id: ShipHero account, Shopify shop domain, Lightspeed domain prefix, QuickBooks realm id, Maystro store.';
comment on column tether.connections.config is
  'Non-secret settings: shop, domain_prefix, realm_id, and optional auth_base_url / api_base_url overrides.';
comment on column tether.connections.lease_owner is
  'The worker that holds this connection for a token refresh until lease_expires_at.';

-- Credentials: encrypted by the Edge Functions (functions-shared/vault.ts) and never readable by
-- anon or authenticated, with or without RLS.
create table tether.credentials (
  connection_id uuid not null references tether.connections (id) on delete cascade,
  field text not null,
  ciphertext text not null,
  updated_at timestamptz not null default now(),
  primary key (connection_id, field),
  constraint field_is_valid check (field ~ '^[a-z][a-z0-9_]*$'),
  constraint ciphertext_is_vault_format
    check (ciphertext ~ '^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$')
);
comment on table tether.credentials is
  'Encrypted secrets per connection and field (access_token, refresh_token, api_token, ...): AES-256-GCM text v1.<keyId>.<iv>.<ciphertext>, bound to <connection_id>:<field>. No grant to anon or authenticated, ever.';

-- Sync state: the position per stream, and its own failure state, so a failing stream backs off
-- and says why without touching the connection's token status.

create table tether.sync_cursors (
  connection_id uuid not null references tether.connections (id) on delete cascade,
  stream text not null,
  cursor text,
  last_synced_at timestamptz,
  last_run_started_at timestamptz,
  lease_owner text,
  lease_expires_at timestamptz,
  updated_at timestamptz not null default now(),
  consecutive_failures integer not null default 0,
  next_attempt_at timestamptz,
  last_error text,
  last_error_at timestamptz,
  primary key (connection_id, stream),
  constraint stream_is_valid check (tether.is_known_stream(stream)),
  constraint lease_is_complete check ((lease_owner is null) = (lease_expires_at is null)),
  constraint consecutive_failures_not_negative check (consecutive_failures >= 0)
);
create index sync_cursors_due_idx on tether.sync_cursors (stream, last_synced_at);
comment on table tether.sync_cursors is
  'Incremental sync position per connection and stream. cursor is provider-specific (a timestamp, a Lightspeed version); it never moves past the start of the run that wrote it.';
comment on column tether.sync_cursors.cursor is
  'Where the next sync of this stream starts, in the provider''s terms (JSON text): a last-update time, a Lightspeed version, a Maystro watermark. Written with each page''s records, in the same transaction.';
comment on column tether.sync_cursors.last_synced_at is
  'Start of the last run that caught up with the provider (read every change up to its start).';
comment on column tether.sync_cursors.next_attempt_at is
  'After a failed run: not before this time (tether.backoff of consecutive_failures).';

-- Backfills: a date-range re-sync as a job row that continues across function invocations by
-- itself. start_backfill() validates and creates the job and triggers the backfill function; the
-- function claims it with a lease, reads the range window by window and checkpoints after every
-- page; continue_backfills() (every minute, sql/schedules.sql) picks up any job whose lease has
-- lapsed. What each backfill wrote is kept in tether.backfill_records.

create table tether.backfills (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references tether.connections (id) on delete cascade,
  stream text not null,
  range_start timestamptz not null,
  range_end timestamptz not null,
  status text not null default 'pending',
  checkpoint jsonb not null default '{}'::jsonb,
  window_seconds integer,
  windows_done integer not null default 0,
  records_count integer not null default 0,
  covered_until timestamptz,
  last_error text,
  lease_owner text,
  lease_expires_at timestamptz,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  consecutive_failures integer not null default 0,
  next_attempt_at timestamptz,
  constraint stream_is_valid check (tether.is_known_stream(stream)),
  constraint status_is_valid
    check (status in ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
  -- Finite bounds: an infinite one made a job that failed every invocation and broke
  -- connection_health's percentage (create_backfill() refuses it with a clear message first).
  constraint range_is_finite check (isfinite(range_start) and isfinite(range_end)),
  constraint range_is_ordered check (range_start < range_end),
  constraint covered_within_range
    check (covered_until is null or covered_until between range_start and range_end),
  constraint counts_not_negative check (windows_done >= 0 and records_count >= 0),
  constraint backfill_failures_not_negative check (consecutive_failures >= 0),
  constraint lease_is_complete check ((lease_owner is null) = (lease_expires_at is null))
);
create index backfills_connection_idx on tether.backfills (connection_id, stream, status);
create index backfills_active_idx on tether.backfills (status, lease_expires_at)
  where status in ('pending', 'running');
comment on table tether.backfills is
  'A date-range re-sync as a job row: started with start_backfill(), continued across function invocations from checkpoint until done, cancellable.';
comment on column tether.backfills.checkpoint is
  'Where the job resumes: {"window_start", "window_end", "cursor"} — the window being read and the provider cursor of its last stored page (null = the window''s start). Written in the same transaction as each page''s records.';
comment on column tether.backfills.window_seconds is
  'Size of the next window: halved after a slow or throttled window, doubled after a fast one (1 hour to 30 days).';
comment on column tether.backfills.covered_until is
  'Every window before this instant is done; percent = (covered_until - range_start) / (range_end - range_start).';
comment on column tether.backfills.records_count is
  'Distinct records this backfill stored or found already current (rows of tether.backfill_records).';
comment on column tether.backfills.consecutive_failures is
  'Failed invocations in a row; after 10 the job is failed. Reset by every stored page.';
comment on column tether.backfills.next_attempt_at is
  'After a failed invocation: continue_backfills() does not pick the job up before this time (tether.backoff).';

create table tether.backfill_records (
  backfill_id uuid not null references tether.backfills (id) on delete cascade,
  stream text not null,
  external_id text not null,
  primary key (backfill_id, stream, external_id),
  constraint stream_is_valid check (tether.is_known_stream(stream))
);
comment on table tether.backfill_records is
  'Every record a backfill stored or found already current in its range, once (join to tether.orders / tether.customers on the backfill''s connection_id and external_id). Written in the same transaction as the records.';

-- Runs

create table tether.runs (
  id bigint generated always as identity primary key,
  connection_id uuid references tether.connections (id) on delete cascade,
  kind text not null,
  stream text,
  backfill_id uuid references tether.backfills (id) on delete set null,
  status text not null default 'running',
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  added_count integer not null default 0,
  updated_count integer not null default 0,
  unchanged_count integer not null default 0,
  error_count integer not null default 0,
  pages_count integer not null default 0,
  error text,
  details jsonb not null default '{}'::jsonb,
  constraint kind_is_valid check (kind in ('refresh', 'sync', 'backfill', 'webhook')),
  -- A run of a stream (sync, backfill) names a known one; refresh and webhook runs name none.
  constraint stream_is_valid check (stream is null or tether.is_known_stream(stream)),
  constraint status_is_valid
    check (status in ('running', 'succeeded', 'failed', 'skipped')),
  constraint finished_after_start check (finished_at is null or finished_at >= started_at),
  constraint counts_not_negative check (
    added_count >= 0 and updated_count >= 0 and unchanged_count >= 0
    and error_count >= 0 and pages_count >= 0
  )
);
create index runs_connection_idx on tether.runs (connection_id, kind, started_at desc);
create index runs_started_idx on tether.runs (started_at);
comment on table tether.runs is
  'One row per token refresh, sync run, backfill slice or webhook batch, with its counts, timing and error. Never holds a token.';

-- Webhooks. A delivery is answered once its events are recorded, and they are processed after the
-- answer (docs/architecture.md "Webhooks: answer first"): a recorded event is `received` with a
-- processing lease in next_attempt_at, and the sweep finishes those whose lease has passed.

create table tether.webhook_events (
  id bigint generated always as identity primary key,
  provider text not null,
  event_id text not null,
  connection_id uuid references tether.connections (id) on delete set null,
  topic text,
  status text not null default 'received',
  payload jsonb,
  attempts integer not null default 0,
  next_attempt_at timestamptz,
  last_error text,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  constraint provider_is_known check (tether.is_known_provider(provider)),
  constraint status_is_valid
    check (status in ('received', 'processed', 'ignored', 'failed')),
  constraint webhook_events_provider_event_id_key unique (provider, event_id)
);
create index webhook_events_retry_idx on tether.webhook_events (status, next_attempt_at);
-- The sweep's work: failed events whose retry time has come.
create index webhook_events_failed_idx on tether.webhook_events (next_attempt_at)
  where status = 'failed';
comment on table tether.webhook_events is
  'Every verified webhook delivery, once per provider event id (a repeat is acknowledged, not processed again).';
comment on column tether.webhook_events.event_id is
  'The provider''s id of the event: X-Shopify-Webhook-Id, X-Shiphero-Message-ID, the CloudEvents id; a SHA-256 of the body (or of the entity change for legacy QuickBooks notifications) where the provider sends none.';
comment on column tether.webhook_events.status is
  'received: recorded and answered, processed after the answer (or by the sweep once its lease has passed); processed; ignored (no active connection); failed (retried by the sweep with backoff).';
comment on column tether.webhook_events.next_attempt_at is
  'received: when its processing lease ends (the sweep then takes it as cut off); failed: when the sweep retries it; held further while a sweep works on it.';
comment on column tether.webhook_events.attempts is
  'How many times the event was processed (1 for an event processed after its answer; never more than one successful processing).';

-- OAuth connect: the nonces of the signed `state`s already used, so a callback URL cannot be
-- replayed. The state itself (a JWT signed with TETHER_OAUTH_STATE_SECRET) says which provider
-- and owner it is for and when it expires; a row here says it was spent.

create table tether.oauth_states (
  nonce text not null,
  provider text not null,
  used_at timestamptz not null default now(),
  -- The state's own expiry: rows past it can be deleted (no state that old is accepted anyway).
  expires_at timestamptz not null,
  constraint oauth_states_pkey primary key (nonce),
  constraint oauth_states_nonce_is_valid check (length(nonce) between 16 and 128),
  constraint oauth_states_provider_is_valid check (tether.is_oauth_provider(provider))
);
create index oauth_states_expires_at_idx on tether.oauth_states (expires_at);
comment on table tether.oauth_states is
  'OAuth state nonces already used by a callback of the connect function: a second callback with the same state is refused (replay). Rows past expires_at may be deleted.';

-- Invocations. The real pg_net worker sends a batch of up to pg_net.batch_size (200) requests and
-- waits for the whole batch before it sends the next (supabase/pg_net v0.20.4, src/worker.c): a
-- call that stays open while its function works holds every other pg_net request of the project
-- behind it. So the SQL API asks for an asynchronous answer (`Prefer: respond-async`, RFC 7240):
-- the function checks the caller and the body, records the invocation here, answers 202 with its
-- id within milliseconds and does the work after the answer (EdgeRuntime.waitUntil). The outcome
-- lands in this row (and in tether.runs). A call without the header (the dashboard's invoke
-- button, the CLI) gets the result in its answer.

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

-- Disconnects asked for in SQL. pg_net's queue, where the invoke key travels, is readable by every
-- database role, and a revocation cannot be undone: so disconnect_connection()'s call through
-- pg_net carries only the id of a request recorded here, and the disconnect function takes nothing
-- else from the invoke key.

create table tether.disconnect_requests (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references tether.connections (id) on delete cascade,
  delete_records boolean not null default false,
  revoke boolean not null default true,
  requested_at timestamptz not null default now()
);
comment on table tether.disconnect_requests is
  'Disconnects asked for through disconnect_connection(), until the disconnect function has done them (it deletes the row in the transaction that ends the connection).';

-- Synced records

create table tether.orders (
  id bigint generated always as identity primary key,
  connection_id uuid not null references tether.connections (id) on delete cascade,
  external_id text not null,
  order_number text,
  status text,
  fulfillment_status text,
  tracking_number text,
  total_price numeric,
  currency text,
  customer_external_id text,
  ordered_at timestamptz,
  remote_updated_at timestamptz,
  raw jsonb not null,
  first_seen_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint orders_connection_external_id_key unique (connection_id, external_id)
);
create index orders_number_idx on tether.orders (connection_id, order_number);
create index orders_ordered_at_idx on tether.orders (connection_id, ordered_at);
comment on table tether.orders is
  'Orders from every provider (ShipHero orders, Shopify orders, Lightspeed sales, QuickBooks invoices and sales receipts, Maystro deliveries): the fields people query plus the raw record. An older remote_updated_at never overwrites a newer one.';

create table tether.customers (
  id bigint generated always as identity primary key,
  connection_id uuid not null references tether.connections (id) on delete cascade,
  external_id text not null,
  email text,
  first_name text,
  last_name text,
  phone text,
  status text not null default 'active',
  remote_updated_at timestamptz,
  raw jsonb not null,
  first_seen_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint status_is_valid check (status in ('active', 'inactive')),
  constraint customers_connection_external_id_key unique (connection_id, external_id)
);
create index customers_email_idx on tether.customers (connection_id, email);
comment on table tether.customers is
  'Customers from Shopify, Lightspeed and QuickBooks. A customer deleted at the provider becomes inactive, never a deleted row.';

-- 4. Row-level security ------------------------------------------------------------------------
-- Every table has RLS. An authenticated user sees the status of the connections they own, and
-- what hangs off them; never a credential. credentials, webhook_events, oauth_states,
-- invocations and disconnect_requests have no policy: only the table owner, which is how the Edge
-- Functions connect, and service_role reach them.

alter table tether.connections enable row level security;
alter table tether.credentials enable row level security;
alter table tether.sync_cursors enable row level security;
alter table tether.backfills enable row level security;
alter table tether.backfill_records enable row level security;
alter table tether.runs enable row level security;
alter table tether.webhook_events enable row level security;
alter table tether.oauth_states enable row level security;
alter table tether.invocations enable row level security;
alter table tether.disconnect_requests enable row level security;
alter table tether.orders enable row level security;
alter table tether.customers enable row level security;

revoke all on all tables in schema tether from public, anon, authenticated;
revoke all on all sequences in schema tether from public, anon, authenticated;
grant all on all tables in schema tether to service_role;
revoke all on tether.credentials from service_role;

create function tether.owns_connection(connection_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from tether.connections c
     where c.id = connection_id and c.owner_id = (select auth.uid())
  )
$$;
comment on function tether.owns_connection(uuid) is
  'True when the calling user (auth.uid()) owns the connection; used by the RLS policies.';
revoke all on function tether.owns_connection(uuid) from public, anon;
grant execute on function tether.owns_connection(uuid) to authenticated;

-- Status columns only: config can carry base URLs a person typed, lease columns are worker
-- internals.
grant select (
  id, provider, external_id, name, owner_id, status, token_expires_at,
  refresh_token_expires_at, last_token_refresh_at, consecutive_failures,
  next_attempt_at, last_error, last_error_at, created_at, updated_at
) on tether.connections to authenticated;
create policy connections_owner_read on tether.connections
  for select to authenticated using (owner_id = (select auth.uid()));

grant select on tether.sync_cursors, tether.backfills, tether.runs, tether.orders, tether.customers,
  tether.backfill_records
  to authenticated;
create policy sync_cursors_owner_read on tether.sync_cursors
  for select to authenticated using (tether.owns_connection(connection_id));
create policy backfills_owner_read on tether.backfills
  for select to authenticated using (tether.owns_connection(connection_id));
create policy backfill_records_owner_read on tether.backfill_records
  for select to authenticated using (exists (
    select 1 from tether.backfills b
     where b.id = backfill_id and tether.owns_connection(b.connection_id)));
create policy runs_owner_read on tether.runs
  for select to authenticated using (tether.owns_connection(connection_id));
create policy orders_owner_read on tether.orders
  for select to authenticated using (tether.owns_connection(connection_id));
create policy customers_owner_read on tether.customers
  for select to authenticated using (tether.owns_connection(connection_id));

-- 5. Health at a glance -------------------------------------------------------------------------

create view tether.connection_health
with (security_invoker = true)
as
select
  c.id,
  c.provider,
  c.name,
  c.external_id,
  c.owner_id,
  c.status,
  c.token_expires_at,
  c.refresh_token_expires_at,
  c.last_token_refresh_at,
  c.consecutive_failures,
  c.next_attempt_at,
  c.last_error,
  c.last_error_at,
  (select s.last_synced_at from tether.sync_cursors s
    where s.connection_id = c.id and s.stream = 'orders') as orders_last_synced_at,
  (select s.last_synced_at from tether.sync_cursors s
    where s.connection_id = c.id and s.stream = 'customers') as customers_last_synced_at,
  b.id as backfill_id,
  b.stream as backfill_stream,
  b.status as backfill_status,
  b.windows_done as backfill_windows_done,
  b.records_count as backfill_records_count,
  -- Null, never an error, for a range it cannot measure (one row must not break the view).
  case when b.id is null
         or not (isfinite(b.range_start) and isfinite(b.range_end)
                 and isfinite(coalesce(b.covered_until, b.range_start)))
         or b.range_end <= b.range_start then null
       else round(100.0 * extract(epoch from (coalesce(b.covered_until, b.range_start) - b.range_start))
                  / extract(epoch from (b.range_end - b.range_start)), 1)
  end as backfill_percent,
  b.last_error as backfill_last_error
from tether.connections c
left join lateral (
  select * from tether.backfills bf
   where bf.connection_id = c.id and bf.status in ('pending', 'running')
   order by bf.created_at
   limit 1
) b on true;
comment on view tether.connection_health is
  'One row per connection: status, token expiry, last refresh, last sync per stream, last error and the running backfill''s progress. Runs with the caller''s rights: a user sees only the connections they own.';
grant select on tether.connection_health to authenticated, service_role;

-- 6. Internals ----------------------------------------------------------------------------------

-- Calling the functions. Each call reaches an Edge Function through pg_net with the URL and key
-- kept in Vault and returns the pg_net request id; the function's own outcome lands in
-- tether.invocations and tether.runs (and its HTTP answer in net._http_response).
--
-- The key is the invoke key, never a Supabase API key: net.http_post queues each request, headers
-- included, in net.http_request_queue, which pg_net grants to PUBLIC (supabase/pg_net
-- sql/pg_net.sql), so any role that can run SQL may read it. The invoke key is Vault secret
-- tether_invoke_key, equal to the functions' TETHER_INVOKE_KEY, sent in x-tether-invoke-key. Only
-- the functions pg_cron reaches accept it (refresh-tokens, sync-orders, sync-customers, backfill,
-- webhooks/_sweep, and disconnect for a request recorded in SQL); the Data API, Auth, Storage and
-- `connect` refuse it. Whoever reads it can start Tether's jobs early, nothing more.
create function tether.invoke_function(function_name text, body jsonb default '{}'::jsonb)
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

create function tether.shown(value text) returns text
language sql immutable
set search_path = ''
as $$
  select case when length(value) <= 40 then value
              else left(value, 40) || format('… (%s characters)', length(value)) end
$$;
comment on function tether.shown(text) is
  'A text argument as an error message quotes it: whole up to 40 characters, cut beyond.';

create function tether.check_provider(provider text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if provider is not null and not tether.is_known_provider(provider) then
    raise exception 'unknown provider "%"', tether.shown(provider)
      using hint = 'one of ' || (select string_agg(p.provider, ', ') from tether.providers() p)
                   || ', or null for all';
  end if;
  return provider;
end
$$;
comment on function tether.check_provider(text) is
  'Returns the provider name unchanged, or raises a clear error when it is not one Tether knows.';

-- Failure bookkeeping

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

-- Newer-wins upserts. One statement per page. A row is written only when the incoming record is
-- newer than the stored one, or as new with different content; otherwise it is left alone and
-- counted as unchanged. Whichever path brings a record (sync, backfill, webhook), an older remote
-- update never overwrites a newer one. Each page writes its rows in external_id order, so two
-- pages written at the same moment (a backfill, a sync, webhooks) lock shared rows in the same
-- order and cannot deadlock each other.

create function tether.upsert_orders(connection_id uuid, records jsonb)
returns table (added integer, updated integer, unchanged integer)
language sql
set search_path = ''
as $$
  with incoming as (
    select * from jsonb_to_recordset(records) as r(
      external_id text, order_number text, status text, fulfillment_status text,
      tracking_number text, total_price numeric, currency text, customer_external_id text,
      ordered_at timestamptz, remote_updated_at timestamptz, raw jsonb)
  ), written as (
    insert into tether.orders as o (connection_id, external_id, order_number, status,
      fulfillment_status, tracking_number, total_price, currency, customer_external_id,
      ordered_at, remote_updated_at, raw)
    select upsert_orders.connection_id, i.external_id, i.order_number, i.status,
           i.fulfillment_status, i.tracking_number, i.total_price, i.currency,
           i.customer_external_id, i.ordered_at, i.remote_updated_at, i.raw
      from incoming i
     order by i.external_id
    on conflict (connection_id, external_id) do update
       set order_number = excluded.order_number,
           status = excluded.status,
           fulfillment_status = excluded.fulfillment_status,
           tracking_number = excluded.tracking_number,
           total_price = excluded.total_price,
           currency = excluded.currency,
           customer_external_id = excluded.customer_external_id,
           ordered_at = excluded.ordered_at,
           remote_updated_at = excluded.remote_updated_at,
           raw = excluded.raw,
           updated_at = now()
     where o.remote_updated_at is null
        or excluded.remote_updated_at > o.remote_updated_at
        or (excluded.remote_updated_at = o.remote_updated_at and excluded.raw is distinct from o.raw)
    returning (xmax = 0) as inserted
  )
  select count(*) filter (where inserted)::integer,
         count(*) filter (where not inserted)::integer,
         ((select count(*) from incoming) - count(*))::integer
    from written
$$;
comment on function tether.upsert_orders(uuid, jsonb) is
  'Upserts a page of orders (a JSON array of tether.orders fields) for one connection; an older remote_updated_at never overwrites a newer one. Returns how many were added, updated and left unchanged. External ids must be unique within the page. Rows are written in external_id order, so concurrent writers of overlapping pages (sync, backfill, webhooks) lock them in the same order and never deadlock.';

create function tether.upsert_customers(connection_id uuid, records jsonb)
returns table (added integer, updated integer, unchanged integer)
language sql
set search_path = ''
as $$
  with incoming as (
    select * from jsonb_to_recordset(records) as r(
      external_id text, email text, first_name text, last_name text, phone text,
      status text, remote_updated_at timestamptz, raw jsonb)
  ), written as (
    insert into tether.customers as c (connection_id, external_id, email, first_name,
      last_name, phone, status, remote_updated_at, raw)
    select upsert_customers.connection_id, i.external_id, i.email, i.first_name, i.last_name,
           i.phone, i.status, i.remote_updated_at, i.raw
      from incoming i
     order by i.external_id
    on conflict (connection_id, external_id) do update
       set email = excluded.email,
           first_name = excluded.first_name,
           last_name = excluded.last_name,
           phone = excluded.phone,
           status = excluded.status,
           remote_updated_at = excluded.remote_updated_at,
           raw = excluded.raw,
           updated_at = now()
     where c.remote_updated_at is null
        or excluded.remote_updated_at > c.remote_updated_at
        or (excluded.remote_updated_at = c.remote_updated_at and excluded.raw is distinct from c.raw)
    returning (xmax = 0) as inserted
  )
  select count(*) filter (where inserted)::integer,
         count(*) filter (where not inserted)::integer,
         ((select count(*) from incoming) - count(*))::integer
    from written
$$;
comment on function tether.upsert_customers(uuid, jsonb) is
  'Upserts a page of customers for one connection, newer remote_updated_at wins (see tether.upsert_orders). A customer deleted at the provider arrives as status inactive; rows are never deleted.';

revoke all on function tether.upsert_orders(uuid, jsonb), tether.upsert_customers(uuid, jsonb)
  from public, anon, authenticated;

-- ShipHero's "Shipment Update" and "Order Canceled" carry a tracking number or a cancellation,
-- not the order and not its update time: facts that only move forward. They are applied to the
-- stored order without touching remote_updated_at, so the next sync (newer wins) still writes
-- the whole order; an order not stored yet is stored with no remote_updated_at, which any sync
-- overwrites.
create function tether.apply_order_facts(
  connection_id uuid,
  external_id text,
  order_number text,
  tracking_number text,
  status text,
  raw jsonb
) returns void
language sql
set search_path = ''
as $$
  insert into tether.orders as o (connection_id, external_id, order_number, status,
    fulfillment_status, tracking_number, remote_updated_at, raw)
  values (apply_order_facts.connection_id, apply_order_facts.external_id,
          apply_order_facts.order_number, apply_order_facts.status, apply_order_facts.status,
          apply_order_facts.tracking_number, null, apply_order_facts.raw)
  on conflict (connection_id, external_id) do update
     set tracking_number = coalesce(excluded.tracking_number, o.tracking_number),
         status = case
           when o.status = 'canceled' then o.status
           when excluded.status = 'canceled' then excluded.status
           when excluded.status is not null and coalesce(o.status, 'pending') = 'pending'
             then excluded.status
           else o.status end,
         fulfillment_status = case
           when o.fulfillment_status = 'canceled' then o.fulfillment_status
           when excluded.status = 'canceled' then excluded.status
           when excluded.status is not null and coalesce(o.fulfillment_status, 'pending') = 'pending'
             then excluded.status
           else o.fulfillment_status end,
         order_number = coalesce(o.order_number, excluded.order_number),
         updated_at = now()
$$;
comment on function tether.apply_order_facts(uuid, text, text, text, text, jsonb) is
  'Applies forward-only order facts from a webhook (a tracking number, a fulfilled or canceled status) without moving remote_updated_at; a canceled order stays canceled.';
revoke all on function tether.apply_order_facts(uuid, text, text, text, text, jsonb)
  from public, anon, authenticated;

-- Backfill validation and creation: one source of truth for the SQL API and the function.

create function tether.backfill_streams(provider text) returns text[]
language sql immutable
set search_path = ''
as $$
  select coalesce((select p.streams from tether.providers() p
                    where p.provider = backfill_streams.provider), array[]::text[])
$$;
comment on function tether.backfill_streams(text) is
  'The streams a provider has (and a backfill can re-read).';
revoke all on function tether.backfill_streams(text) from public, anon, authenticated;

create function tether.backfill_earliest_start() returns timestamptz
language sql immutable
set search_path = ''
as $$
  select timestamptz '2000-01-01T00:00:00Z'
$$;
comment on function tether.backfill_earliest_start() is
  'The earliest range_start a backfill accepts: 2000-01-01 UTC, before any of the providers (QuickBooks Online 2000s, Lightspeed 2005, Shopify 2006, ShipHero 2013, Maystro 2019) could hold a record. Equal to EARLIEST_BACKFILL_START in functions-shared/jobs/backfill.ts.';
revoke all on function tether.backfill_earliest_start() from public, anon, authenticated;

create function tether.create_backfill(connection_id uuid, stream text,
  range_start timestamptz, range_end timestamptz) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  conn record;
  other record;
  new_id uuid;
  earliest constant timestamptz := tether.backfill_earliest_start();
  bound record;
begin
  if connection_id is null or stream is null or range_start is null or range_end is null then
    raise exception 'connection_id, stream, range_start and range_end are all required'
      using errcode = 'invalid_parameter_value',
            hint = 'select start_backfill(''<connection uuid>'', ''orders'', ''2026-01-29T00:00:00Z'', ''2026-01-31T23:59:59Z'')';
  end if;
  for bound in select * from (values ('range_start', range_start), ('range_end', range_end))
                 as b(name, value) loop
    if not isfinite(bound.value) or bound.value < earliest then
      raise exception '% (%) must be a time on or after %', bound.name, bound.value, earliest
        using errcode = 'invalid_parameter_value',
              hint = 'no provider holds records from before then; e.g. 2026-01-29T00:00:00Z';
    end if;
  end loop;
  -- Locks the connection: two starts on it at once are checked for overlap one after the other.
  select c.id, c.provider, c.name into conn
    from tether.connections c where c.id = create_backfill.connection_id for update;
  if not found then
    raise exception 'unknown connection %', connection_id
      using errcode = 'no_data_found',
            hint = 'select id, provider, name from tether.connection_health';
  end if;
  if not (stream = any(tether.backfill_streams(conn.provider))) then
    raise exception '% has no % stream', conn.provider, tether.shown(stream)
      using errcode = 'invalid_parameter_value',
            hint = format('streams of %s: %s', conn.provider,
                          array_to_string(tether.backfill_streams(conn.provider), ', '));
  end if;
  if range_start >= range_end then
    raise exception 'range_start (%) must be before range_end (%)', range_start, range_end
      using errcode = 'invalid_parameter_value',
            hint = 'the range is [range_start, range_end): e.g. 2026-01-29T00:00:00Z to 2026-01-31T23:59:59Z';
  end if;
  if range_end > now() then
    raise exception 'range_end (%) is in the future', range_end
      using errcode = 'invalid_parameter_value',
            hint = 'a backfill re-reads what already happened; the scheduled sync keeps up with the present. End the range at now() or earlier.';
  end if;
  select b.id, b.range_start, b.range_end, b.status into other
    from tether.backfills b
   where b.connection_id = create_backfill.connection_id and b.stream = create_backfill.stream
     and b.status in ('pending', 'running')
     and b.range_start < create_backfill.range_end and create_backfill.range_start < b.range_end
   limit 1;
  if found then
    raise exception 'backfill % (% to %, %) is already running on this connection''s % and overlaps this range',
      other.id, other.range_start, other.range_end, other.status, stream
      using errcode = 'exclusion_violation',
            hint = format('wait for it to finish, or cancel it: select cancel_backfill(%L)', other.id);
  end if;
  insert into tether.backfills (connection_id, stream, range_start, range_end, status)
  values (create_backfill.connection_id, create_backfill.stream, range_start, range_end, 'pending')
  returning id into new_id;
  return new_id;
end
$$;
comment on function tether.create_backfill(uuid, text, timestamptz, timestamptz) is
  'Validates a backfill request (finite bounds on or after backfill_earliest_start(), known connection, a stream its provider has, range_start < range_end, range_end not in the future, no overlap with a pending or running backfill of the same stream) and creates the job row, status pending. start_backfill() = this + triggering the backfill function.';
revoke all on function tether.create_backfill(uuid, text, timestamptz, timestamptz)
  from public, anon, authenticated;

-- 6a. Rate budgets ------------------------------------------------------------------------------
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

-- 6b. The change feed ---------------------------------------------------------------------------
-- The change feed (docs/architecture.md, "The change feed"): every write of a synced record by
-- sync, backfill or webhook appends the change to tether.changes in the same transaction; the
-- user's own code reads it with tether.read_changes(consumer) and acknowledges with
-- tether.ack_changes(consumer, up_to).
--
-- Commit order. A sequence value is taken when a row is inserted, not when its transaction
-- commits: a writer that inserted change 7 may commit after one that inserted change 8, and a
-- reader that had moved past 8 would never see 7. So a change gets its feed id when it is
-- published, not when it is written: writers only insert (numbered by `seq`, insert order), and
-- publishing (done by read_changes, one publisher at a time) numbers every committed unpublished
-- change after the last published id. A change that commits later is published later and gets a
-- higher id. Per record, seq order is commit order: a record's next change is written only after
-- the transaction that wrote its previous one released the row (or its unique key) lock, so a
-- record's committed changes are always a seq prefix and publishing in seq order keeps them in
-- order.
--
-- Appending: statement-level AFTER triggers with transition tables on tether.orders and
-- tether.customers, so every path that writes records (upsert_orders, upsert_customers,
-- apply_order_facts, and any future one) appends without being told, and the diff is taken from
-- the row versions really replaced (a diff computed inside the upsert statement would compare
-- with its snapshot, stale when a concurrent writer changed the row first). The cost is measured
-- by `npm run bench -- feed`. Measured on 10,000-order pages (bench machine, 2 shared cores,
-- median of 6 alternating runs of upsert_orders): a created change carrying the record as jsonb
-- (to_jsonb or jsonb_build_object of the columns) made the upsert ~70 % slower, one carrying {}
-- ~20 %. A created change therefore carries {}: the new record is in its table.

-- 6b.1 Tables ------------------------------------------------------------------------------------

create table tether.changes (
  seq bigint generated always as identity primary key,
  id bigint,
  connection_id uuid not null references tether.connections (id) on delete cascade,
  stream text not null,
  record_id text not null,
  op text not null,
  fields jsonb not null,
  at timestamptz not null default now(),
  -- No check on stream: only the triggers below write it, each naming its own table's stream, and
  -- tether.is_known_stream() per row made upsert_orders three times slower (measured).
  constraint changes_op_is_valid check (op in ('created', 'updated', 'deleted', 'inactive'))
);
-- Writers touch only the primary key and this partial index; publishing fills the id index.
create index changes_unpublished_idx on tether.changes (seq) where id is null;
create unique index changes_id_key on tether.changes (id) where id is not null;
comment on table tether.changes is
  'The change feed: one row per change of a synced record (connection, stream, record_id = the provider''s id, op, the changed fields'' new values, at). id is the feed position, in commit order: null until tether.read_changes publishes the change. Read with tether.read_changes, acknowledge with tether.ack_changes.';
comment on column tether.changes.seq is
  'Insert order (a sequence taken at insert time, not commit time); publishing numbers changes in this order.';
comment on column tether.changes.fields is
  'created: {} (the record is new: read it from tether.orders or tether.customers); updated / deleted / inactive: the columns whose values changed, with their new values, raw reduced to its changed top-level keys (a removed key is null).';

-- The last published id: its row lock is the publisher's lock.
create table tether.change_feed (
  singleton boolean primary key default true check (singleton),
  last_id bigint not null default 0
);
insert into tether.change_feed default values;
comment on table tether.change_feed is
  'One row: the last id published in tether.changes. Locked by the one publisher at work.';

create table tether.change_consumers (
  consumer text primary key,
  acked_through bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint consumer_is_named check (length(consumer) between 1 and 200)
);
comment on table tether.change_consumers is
  'One row per consumer of the change feed (created by its first read_changes): every change with id <= acked_through is acknowledged.';

create table tether.change_leases (
  consumer text not null references tether.change_consumers (consumer) on delete cascade,
  change_id bigint not null,
  connection_id uuid not null,
  stream text not null,
  record_id text not null,
  lease uuid not null,
  leased_until timestamptz not null,
  acked boolean not null default false,
  primary key (consumer, change_id)
);
create index change_leases_held_idx on tether.change_leases (consumer, connection_id, stream, record_id)
  where not acked;
create index change_leases_lease_idx on tether.change_leases (lease);
comment on table tether.change_leases is
  'Changes above a consumer''s acked_through that were handed out: leased until leased_until (then handed out again), or acknowledged. Rows at or below acked_through are removed.';

alter table tether.changes enable row level security;
alter table tether.change_feed enable row level security;
alter table tether.change_consumers enable row level security;
alter table tether.change_leases enable row level security;
revoke all on tether.changes, tether.change_feed, tether.change_consumers, tether.change_leases
  from public, anon, authenticated;
grant all on tether.changes, tether.change_feed, tether.change_consumers, tether.change_leases
  to service_role;

-- 6b.2 Appending ---------------------------------------------------------------------------------

-- What changed between two versions of a record, as jsonb: the columns whose values differ
-- (bookkeeping columns left out), raw reduced to its changed top-level keys.
create function tether.changed_fields(old jsonb, new jsonb) returns jsonb
language sql immutable
set search_path = ''
as $$
  select coalesce(jsonb_object_agg(n.key, case
           when n.key = 'raw' and jsonb_typeof(n.value) = 'object'
                and jsonb_typeof(old -> 'raw') = 'object' then
             (select coalesce(jsonb_object_agg(r.key, r.value), '{}'::jsonb)
                from jsonb_each(n.value) r where (old -> 'raw' -> r.key) is distinct from r.value)
             || (select coalesce(jsonb_object_agg(k, 'null'::jsonb), '{}'::jsonb)
                   from jsonb_object_keys(old -> 'raw') k where not n.value ? k)
           else n.value end), '{}'::jsonb)
    from jsonb_each(new - array['id', 'connection_id', 'external_id', 'first_seen_at',
                                'updated_at']) n
   where (old -> n.key) is distinct from n.value
$$;
comment on function tether.changed_fields(jsonb, jsonb) is
  'The fields of a record (to_jsonb of a tether.orders or tether.customers row) whose values differ between old and new, with their new values; raw is reduced to its changed top-level keys. Bookkeeping columns (id, connection_id, external_id, first_seen_at, updated_at) never count as a change.';
revoke all on function tether.changed_fields(jsonb, jsonb) from public, anon, authenticated;

create function tether.append_created_changes() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into tether.changes (connection_id, stream, record_id, op, fields)
  select n.connection_id, tg_argv[0], n.external_id, 'created', '{}'::jsonb
    from created_rows n
   order by n.external_id;
  return null;
end
$$;
comment on function tether.append_created_changes() is
  'Statement trigger (AFTER INSERT, transition table created_rows): appends a created change per new record, in the same transaction. Argument: the stream.';

create function tether.append_updated_changes() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into tether.changes (connection_id, stream, record_id, op, fields)
  select n.connection_id, tg_argv[0], n.external_id,
         -- A record removed at the provider stays as a row with that status: an order as
         -- "Deleted" (QuickBooks' word, the only provider that deletes orders), a customer as
         -- inactive.
         case when tg_argv[0] = 'customers' and n.status = 'inactive'
                   and o.status is distinct from 'inactive' then 'inactive'
              when tg_argv[0] = 'orders' and lower(n.status) = 'deleted'
                   and lower(o.status) is distinct from 'deleted' then 'deleted'
              else 'updated' end,
         d.fields
    from updated_new n
    join updated_old o on o.id = n.id
   cross join lateral (select tether.changed_fields(to_jsonb(o), to_jsonb(n)) as fields) d
   where d.fields <> '{}'::jsonb
   order by n.external_id;
  return null;
end
$$;
comment on function tether.append_updated_changes() is
  'Statement trigger (AFTER UPDATE, transition tables updated_old / updated_new): appends an updated change (inactive for a customer that became inactive, deleted for an order deleted at the provider) per record whose fields changed; a write that changed nothing appends nothing. Argument: the stream.';

create trigger orders_append_created after insert on tether.orders
  referencing new table as created_rows
  for each statement execute function tether.append_created_changes('orders');
create trigger orders_append_updated after update on tether.orders
  referencing old table as updated_old new table as updated_new
  for each statement execute function tether.append_updated_changes('orders');
create trigger customers_append_created after insert on tether.customers
  referencing new table as created_rows
  for each statement execute function tether.append_created_changes('customers');
create trigger customers_append_updated after update on tether.customers
  referencing old table as updated_old new table as updated_new
  for each statement execute function tether.append_updated_changes('customers');

-- 6b.3 Publishing, reading, acknowledging ---------------------------------------------------------

create function tether.publish_changes(max integer default 10000) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  last bigint;
  published integer;
begin
  -- One publisher at a time, holding the lock until it commits: the ids of the next publisher
  -- follow these. A publisher already at work publishes what this call would have.
  select f.last_id into last from tether.change_feed f for update skip locked;
  if not found then
    return 0;
  end if;
  with next as (
    select c.seq, last + row_number() over (order by c.seq) as id
      from tether.changes c
     where c.id is null
     order by c.seq
     limit greatest(max, 1)
  )
  update tether.changes c set id = next.id from next where c.seq = next.seq;
  get diagnostics published = row_count;
  if published > 0 then
    update tether.change_feed set last_id = last + published;
  end if;
  return published;
end
$$;
comment on function tether.publish_changes(integer) is
  'Numbers committed unpublished changes (up to max) after the last published id, in insert order: ids in commit order. Called by read_changes; returns how many it published (0 when another publisher is at work).';
revoke all on function tether.publish_changes(integer) from public, anon, authenticated;
grant execute on function tether.publish_changes(integer) to service_role;

create function tether.read_changes(consumer text, max integer default 100,
  lease_for interval default interval '5 minutes')
returns table (id bigint, connection_id uuid, stream text, record_id text, op text, fields jsonb,
               at timestamptz, lease uuid, leased_until timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  who constant text := read_changes.consumer;
  through bigint;
  new_lease constant uuid := gen_random_uuid();
  until constant timestamptz := clock_timestamp() + lease_for;
begin
  if who is null or length(who) not between 1 and 200 then
    raise exception 'consumer must be a name of 1 to 200 characters';
  end if;
  if max is null or max < 1 or max > 10000 then
    raise exception 'max must be between 1 and 10000, not %', max;
  end if;
  if lease_for is null or lease_for <= interval '0' then
    raise exception 'lease_for must be a positive interval';
  end if;
  insert into tether.change_consumers as cc (consumer) values (who) on conflict do nothing;
  -- Readers of one consumer take their batches one at a time (until their transaction ends;
  -- called on its own, as supabase-js rpc does, that is the few milliseconds of this call).
  select cc.acked_through into through
    from tether.change_consumers cc where cc.consumer = who for update;
  -- After the consumer's lock, so a reader waiting for it never holds up other publishers.
  perform tether.publish_changes();
  -- Leases that ran out: their changes are handed out again.
  delete from tether.change_leases l
   where l.consumer = who and not l.acked and l.leased_until <= clock_timestamp();
  return query
  with picked as (
    select c.id, c.connection_id, c.stream, c.record_id, c.op, c.fields, c.at
      from tether.changes c
     where c.id > through
       and not exists (select 1 from tether.change_leases l
                        where l.consumer = who and l.change_id = c.id)
       -- Per record in order: none of a record's changes while an earlier one is out.
       and not exists (select 1 from tether.change_leases l
                        where l.consumer = who and not l.acked
                          and l.connection_id = c.connection_id and l.stream = c.stream
                          and l.record_id = c.record_id)
     order by c.id
     limit max
  ), leased as (
    insert into tether.change_leases (consumer, change_id, connection_id, stream, record_id,
                                      lease, leased_until)
    select who, p.id, p.connection_id, p.stream, p.record_id, new_lease, until from picked p
  )
  select p.id, p.connection_id, p.stream, p.record_id, p.op, p.fields, p.at, new_lease, until
    from picked p
   order by p.id;
end
$$;
comment on function tether.read_changes(text, integer, interval) is
  'The next changes (up to max, in id order) for a consumer, leased to this caller for lease_for: no other reader of the consumer gets them (nor any later change of the same records) until they are acknowledged with tether.ack_changes or the lease runs out, when they are handed out again. At least once, in order per record.';
revoke all on function tether.read_changes(text, integer, interval) from public, anon, authenticated;
grant execute on function tether.read_changes(text, integer, interval) to service_role;

create function tether.ack_changes(consumer text, up_to bigint, lease uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  who constant text := ack_changes.consumer;
  which uuid := ack_changes.lease;
  through bigint;
  acked integer;
begin
  select cc.acked_through into through
    from tether.change_consumers cc where cc.consumer = who for update;
  if not found then
    raise exception 'no consumer "%" (read_changes creates it)', tether.shown(who);
  end if;
  if which is null then
    select l.lease into which from tether.change_leases l
     where l.consumer = who and l.change_id = up_to;
  end if;
  update tether.change_leases l set acked = true
   where l.consumer = who and l.lease = which and l.change_id <= up_to and not l.acked;
  get diagnostics acked = row_count;
  -- Move acked_through over every acknowledged change right above it (an index walk from it).
  select coalesce(
           (select c.id - 1 from tether.changes c
             where c.id > through
               and not exists (select 1 from tether.change_leases l
                                where l.consumer = who and l.change_id = c.id and l.acked)
             order by c.id
             limit 1),
           (select f.last_id from tether.change_feed f))
    into through;
  update tether.change_consumers cc set acked_through = through, updated_at = now()
   where cc.consumer = who and cc.acked_through < through;
  delete from tether.change_leases l where l.consumer = who and l.change_id <= through;
  return acked;
end
$$;
comment on function tether.ack_changes(text, bigint, uuid) is
  'Acknowledges the changes with id <= up_to of one lease of a consumer: the lease given, or the one that handed out change up_to. An acknowledged change is never handed out to the consumer again. Returns how many were acknowledged (0 when the lease had run out and its changes went to another reader).';
revoke all on function tether.ack_changes(text, bigint, uuid) from public, anon, authenticated;
grant execute on function tether.ack_changes(text, bigint, uuid) to service_role;

-- 6b.4 Retention: cleanup also prunes acknowledged changes ----------------------------------------

create function tether.cleanup(keep interval default interval '14 days',
  changes_keep interval default interval '7 days') returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  runs_deleted bigint;
  invocations_deleted bigint;
  responses_deleted bigint;
  cron_deleted bigint := 0;
  changes_deleted bigint;
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
  -- Changes every consumer acknowledged, older than changes_keep.
  delete from tether.changes c
   where c.id <= (select min(cc.acked_through) from tether.change_consumers cc)
     and c.at < now() - changes_keep;
  get diagnostics changes_deleted = row_count;
  return jsonb_build_object('runs', runs_deleted, 'invocations', invocations_deleted,
                            'http_responses', responses_deleted,
                            'cron_job_run_details', cron_deleted,
                            'changes', changes_deleted);
end
$$;
comment on function tether.cleanup(interval, interval) is
  'Deletes run records, invocations, pg_net responses and pg_cron run details older than keep (default 14 days), and feed changes every consumer acknowledged that are older than changes_keep (default 7 days); scheduled daily by sql/schedules.sql. pg_net itself keeps responses for pg_net.ttl (6 hours).';
revoke all on function tether.cleanup(interval, interval) from public, anon, authenticated;

-- 6b.5 The Data API's door: supabase-js rpc() reaches functions in the exposed schema (public), as
-- the tether_* views are; both call the functions above, for service_role only.

create function public.tether_read_changes(consumer text, max integer default 100,
  lease_for interval default interval '5 minutes')
returns table (id bigint, connection_id uuid, stream text, record_id text, op text, fields jsonb,
               at timestamptz, lease uuid, leased_until timestamptz)
language sql
set search_path = ''
as $$
  select * from tether.read_changes($1, $2, $3)
$$;
comment on function public.tether_read_changes(text, integer, interval) is
  'tether.read_changes for supabase-js rpc(''tether_read_changes'', {consumer, max}) with the service role.';

create function public.tether_ack_changes(consumer text, up_to bigint, lease uuid default null)
returns integer
language sql
set search_path = ''
as $$
  select tether.ack_changes($1, $2, $3)
$$;
comment on function public.tether_ack_changes(text, bigint, uuid) is
  'tether.ack_changes for supabase-js rpc(''tether_ack_changes'', {consumer, up_to, lease}) with the service role.';

revoke all on function public.tether_read_changes(text, integer, interval),
  public.tether_ack_changes(text, bigint, uuid) from public, anon, authenticated;
grant execute on function public.tether_read_changes(text, integer, interval),
  public.tether_ack_changes(text, bigint, uuid) to service_role;

-- 7. The SQL API --------------------------------------------------------------------------------
-- What pg_cron and people in the SQL editor call, in public. Each returns at once: the pg_net
-- request id (or the backfill's id); outcomes land in tether.invocations, tether.runs and
-- tether.connection_health.

-- Token refresh

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

-- Incremental sync

create function public.sync_orders(provider text default null) returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_function('sync-orders',
    jsonb_strip_nulls(jsonb_build_object('provider', tether.check_provider(provider))))
$$;
comment on function public.sync_orders(text) is
  'Syncs the orders of every connection that is due (not synced within its sync_interval), of one provider or all, through the sync-orders function. Returns the pg_net request id; outcomes are in tether.runs (kind sync) and tether.connection_health.';

create function public.sync_customers(provider text default null) returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_function('sync-customers',
    jsonb_strip_nulls(jsonb_build_object('provider', tether.check_provider(provider))))
$$;
comment on function public.sync_customers(text) is
  'Syncs the customers of every connection that is due, of one provider or all, through the sync-customers function. Returns the pg_net request id.';

revoke all on function public.sync_orders(text), public.sync_customers(text)
  from public, anon, authenticated;

-- Backfills

create function public.start_backfill(connection_id uuid, stream text, range_start timestamptz,
  range_end timestamptz) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_id uuid;
begin
  new_id := tether.create_backfill(connection_id, stream, range_start, range_end);
  perform tether.invoke_function('backfill', jsonb_build_object('backfill_id', new_id));
  return new_id;
end
$$;
comment on function public.start_backfill(uuid, text, timestamptz, timestamptz) is
  'Re-syncs one stream of one connection for records last updated in [range_start, range_end), through the backfill function, across as many invocations as it takes. Returns the backfill id; progress in tether.backfills and tether.connection_health, what it wrote in tether.backfill_records.';

create function public.cancel_backfill(backfill_id uuid) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_status text;
begin
  select b.status into current_status
    from tether.backfills b where b.id = cancel_backfill.backfill_id for update;
  if not found then
    raise exception 'unknown backfill %', backfill_id
      using errcode = 'no_data_found',
            hint = 'select id, connection_id, stream, status from tether.backfills order by created_at desc';
  end if;
  if current_status not in ('pending', 'running') then
    return current_status;
  end if;
  update tether.backfills
     set status = 'cancelled', finished_at = now(), lease_owner = null, lease_expires_at = null,
         next_attempt_at = null, updated_at = now()
   where id = cancel_backfill.backfill_id;
  return 'cancelled';
end
$$;
comment on function public.cancel_backfill(uuid) is
  'Cancels a pending or running backfill: the worker stops at its next page; everything already written stays. Returns the status (cancelled, or the final status it already had).';

create function public.continue_backfills() returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  job record;
  n integer := 0;
begin
  for job in
    select b.id from tether.backfills b
     where b.status in ('pending', 'running')
       and (b.lease_expires_at is null or b.lease_expires_at < now())
       and coalesce(b.next_attempt_at, '-infinity') <= now()
     order by b.created_at
     limit 5
  loop
    perform tether.invoke_function('backfill', jsonb_build_object('backfill_id', job.id));
    n := n + 1;
  end loop;
  return n;
end
$$;
comment on function public.continue_backfills() is
  'The safety net, scheduled every minute: triggers the backfill function for up to 5 pending or running backfills that no live lease holds (a crashed or timed-out worker, a lost self-invocation, a retry after backoff). Returns how many it triggered.';

revoke all on function public.start_backfill(uuid, text, timestamptz, timestamptz),
  public.cancel_backfill(uuid), public.continue_backfills()
  from public, anon, authenticated;

-- Webhooks

create function public.process_webhook_events() returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_function('webhooks/_sweep', '{}'::jsonb)
$$;
comment on function public.process_webhook_events() is
  'The webhook sweep, scheduled every minute: asks the webhooks function to process again the failed events whose next attempt (tether.backoff) has come, and the received events whose processing was cut off (their processing lease has passed). Returns the pg_net request id.';
revoke all on function public.process_webhook_events() from public, anon, authenticated;

-- Disconnecting

create function public.disconnect_connection(connection_id uuid, delete_records boolean default false,
  revoke boolean default true) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  request_id uuid;
begin
  if not exists (select 1 from tether.connections c where c.id = disconnect_connection.connection_id) then
    raise exception 'unknown connection %', connection_id
      using errcode = 'no_data_found',
            hint = 'select id, provider, name, status from tether.connection_health';
  end if;
  insert into tether.disconnect_requests (connection_id, delete_records, revoke)
  values (connection_id, coalesce(delete_records, false), coalesce(revoke, true))
  returning id into request_id;
  return tether.invoke_function('disconnect', jsonb_build_object('request_id', request_id));
end
$$;
comment on function public.disconnect_connection(uuid, boolean, boolean) is
  'Ends a connection through the disconnect function: revokes the grant at the provider where it can (revoke), deletes the credentials, cancels its backfills, and keeps it as disabled with its synced records, or deletes it and them (delete_records). Returns the pg_net request id; the outcome is in tether.invocations and tether.connection_health.';
revoke all on function public.disconnect_connection(uuid, boolean, boolean)
  from public, anon, authenticated;

-- 8. The Data API ------------------------------------------------------------------------------
-- PostgREST serves only the schemas a project exposes, and a
-- project exposes `public` (and `graphql_public`) unless someone changes it
-- ([api] schemas in the CLI's config.toml template; Settings > Data API >
-- Exposed schemas on the dashboard). Exposing `tether` would mean changing a
-- project setting the shop owns, so Tether publishes what a signed-in user may
-- read as views in `public` instead, named tether_*: security_invoker views,
-- so the querying role's privileges and the tables' RLS policies
-- (owner_id = auth.uid()) decide, exactly as if the tables were exposed.
-- anon gets nothing; nobody writes through them.

create view public.tether_connections
with (security_invoker = true)
as
select id, provider, external_id, name, owner_id, status, token_expires_at,
       refresh_token_expires_at, last_token_refresh_at, consecutive_failures,
       next_attempt_at, last_error, last_error_at, created_at, updated_at
  from tether.connections;
comment on view public.tether_connections is
  'Tether (Data API): the signed-in user''s connections, status columns only (RLS: owner_id = auth.uid()).';

create view public.tether_connection_health with (security_invoker = true) as
  select * from tether.connection_health;
comment on view public.tether_connection_health is
  'Tether (Data API): tether.connection_health for the signed-in user''s connections.';

create view public.tether_sync_cursors with (security_invoker = true) as
  select * from tether.sync_cursors;
create view public.tether_runs with (security_invoker = true) as
  select * from tether.runs;
create view public.tether_backfills with (security_invoker = true) as
  select * from tether.backfills;
create view public.tether_backfill_records with (security_invoker = true) as
  select * from tether.backfill_records;
create view public.tether_orders with (security_invoker = true) as
  select * from tether.orders;
create view public.tether_customers with (security_invoker = true) as
  select * from tether.customers;
comment on view public.tether_sync_cursors is
  'Tether (Data API): sync cursors of the signed-in user''s connections.';
comment on view public.tether_runs is
  'Tether (Data API): runs of the signed-in user''s connections.';
comment on view public.tether_backfills is
  'Tether (Data API): backfills of the signed-in user''s connections.';
comment on view public.tether_backfill_records is
  'Tether (Data API): records found by the signed-in user''s backfills.';
comment on view public.tether_orders is
  'Tether (Data API): orders of the signed-in user''s connections.';
comment on view public.tether_customers is
  'Tether (Data API): customers of the signed-in user''s connections.';

-- Supabase's default privileges grant everything new in public to anon,
-- authenticated and service_role: take that back, then grant reading only.
revoke all on public.tether_connections, public.tether_connection_health,
  public.tether_sync_cursors, public.tether_runs, public.tether_backfills,
  public.tether_backfill_records, public.tether_orders, public.tether_customers
  from public, anon, authenticated, service_role;
grant select on public.tether_connections, public.tether_connection_health,
  public.tether_sync_cursors, public.tether_runs, public.tether_backfills,
  public.tether_backfill_records, public.tether_orders, public.tether_customers
  to authenticated, service_role;
