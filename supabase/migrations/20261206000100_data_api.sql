-- The Data API. PostgREST serves only the schemas a project exposes, and a
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
