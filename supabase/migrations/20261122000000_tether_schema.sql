-- Tether's schema: connections and their encrypted credentials, sync state,
-- run records, backfills, webhook events, and the synced orders and customers.
-- Not exposed to the Data API except through RLS'd views; the Edge Functions
-- reach it over a direct Postgres connection.

create extension if not exists pg_net;

create schema if not exists tether;
comment on schema tether is
  'Tether: commerce integration connections, token state, sync cursors, runs, backfills, webhooks and synced records.';
revoke all on schema tether from public, anon;
grant usage on schema tether to authenticated, service_role;

-- Connections ---------------------------------------------------------------

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
  constraint provider_is_known
    check (provider in ('shiphero', 'shopify', 'lightspeed', 'quickbooks', 'maystro')),
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
comment on table tether.connections is
  'One row per connected provider account. status: active; error = transient failure, retried after next_attempt_at with backoff; reauth_required = the provider rejected the credentials and a person must reconnect; disabled.';
comment on column tether.connections.external_id is
  'The provider''s account id: ShipHero account, Shopify shop domain, Lightspeed domain prefix, QuickBooks realm id, Maystro store.';
comment on column tether.connections.config is
  'Non-secret settings: shop, domain_prefix, realm_id, and optional auth_base_url / api_base_url overrides.';
comment on column tether.connections.lease_owner is
  'The worker that holds this connection for a token refresh until lease_expires_at.';

-- Credentials: encrypted by the Edge Functions (functions-shared/vault.ts) and
-- never readable by anon or authenticated, with or without RLS.
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

-- Sync state ----------------------------------------------------------------

create table tether.sync_cursors (
  connection_id uuid not null references tether.connections (id) on delete cascade,
  stream text not null,
  cursor text,
  last_synced_at timestamptz,
  last_run_started_at timestamptz,
  lease_owner text,
  lease_expires_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (connection_id, stream),
  constraint stream_is_valid check (stream in ('orders', 'customers')),
  constraint lease_is_complete check ((lease_owner is null) = (lease_expires_at is null))
);
comment on table tether.sync_cursors is
  'Incremental sync position per connection and stream. cursor is provider-specific (a timestamp, a Lightspeed version); it never moves past the start of the run that wrote it.';

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
  constraint stream_is_valid check (stream in ('orders', 'customers')),
  constraint status_is_valid
    check (status in ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
  constraint range_is_ordered check (range_start < range_end),
  constraint covered_within_range
    check (covered_until is null or covered_until between range_start and range_end),
  constraint counts_not_negative check (windows_done >= 0 and records_count >= 0),
  constraint lease_is_complete check ((lease_owner is null) = (lease_expires_at is null))
);
create index backfills_connection_idx on tether.backfills (connection_id, stream, status);
comment on table tether.backfills is
  'A date-range re-sync as a job row: started with start_backfill(), continued across function invocations from checkpoint until done, cancellable.';

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
  constraint provider_is_known
    check (provider in ('shiphero', 'shopify', 'lightspeed', 'quickbooks', 'maystro')),
  constraint status_is_valid
    check (status in ('received', 'processed', 'ignored', 'failed')),
  constraint webhook_events_provider_event_id_key unique (provider, event_id)
);
create index webhook_events_retry_idx on tether.webhook_events (status, next_attempt_at);
comment on table tether.webhook_events is
  'Every verified webhook delivery, once per provider event id (a repeat is acknowledged, not processed again).';

-- Synced records --------------------------------------------------------------

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

-- Row-level security ------------------------------------------------------------
-- Every table has RLS. An authenticated user sees the status of the
-- connections they own, and what hangs off them; never a credential.

alter table tether.connections enable row level security;
alter table tether.credentials enable row level security;
alter table tether.sync_cursors enable row level security;
alter table tether.backfills enable row level security;
alter table tether.runs enable row level security;
alter table tether.webhook_events enable row level security;
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

-- Status columns only: config can carry base URLs a person typed, lease
-- columns are worker internals.
grant select (
  id, provider, external_id, name, owner_id, status, token_expires_at,
  refresh_token_expires_at, last_token_refresh_at, consecutive_failures,
  next_attempt_at, last_error, last_error_at, created_at, updated_at
) on tether.connections to authenticated;
create policy connections_owner_read on tether.connections
  for select to authenticated using (owner_id = (select auth.uid()));

grant select on tether.sync_cursors, tether.backfills, tether.runs, tether.orders, tether.customers
  to authenticated;
create policy sync_cursors_owner_read on tether.sync_cursors
  for select to authenticated using (tether.owns_connection(connection_id));
create policy backfills_owner_read on tether.backfills
  for select to authenticated using (tether.owns_connection(connection_id));
create policy runs_owner_read on tether.runs
  for select to authenticated using (tether.owns_connection(connection_id));
create policy orders_owner_read on tether.orders
  for select to authenticated using (tether.owns_connection(connection_id));
create policy customers_owner_read on tether.customers
  for select to authenticated using (tether.owns_connection(connection_id));
-- credentials and webhook_events: RLS on and no policy for anyone but the
-- table owner, which is how the Edge Functions connect.

-- Health at a glance ----------------------------------------------------------

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
  case when b.id is null then null
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
