-- Incremental sync (issue #4): failure state per stream, the newer-wins
-- upserts of orders and customers, and sync_orders() / sync_customers().

-- Failure state per (connection, stream), so a failing stream backs off and
-- says why, without touching the connection's token status.
alter table tether.sync_cursors
  add column consecutive_failures integer not null default 0,
  add column next_attempt_at timestamptz,
  add column last_error text,
  add column last_error_at timestamptz,
  add constraint consecutive_failures_not_negative check (consecutive_failures >= 0);
comment on column tether.sync_cursors.cursor is
  'Where the next sync of this stream starts, in the provider''s terms (JSON text): a last-update time, a Lightspeed version, a Maystro watermark. Written with each page''s records, in the same transaction.';
comment on column tether.sync_cursors.last_synced_at is
  'Start of the last run that caught up with the provider (read every change up to its start).';
comment on column tether.sync_cursors.next_attempt_at is
  'After a failed run: not before this time (tether.backoff of consecutive_failures).';

create index sync_cursors_due_idx on tether.sync_cursors (stream, last_synced_at);

-- Newer-wins upserts --------------------------------------------------------------
-- One statement per page. A row is written only when the incoming record is
-- newer than the stored one, or as new with different content; otherwise it is
-- left alone and counted as unchanged. Whichever path brings a record (sync,
-- backfill, webhook), an older remote update never overwrites a newer one.
-- Each page writes its rows in external_id order, so two pages written at the
-- same moment (a backfill, a sync, webhooks) lock shared rows in the same order
-- and cannot deadlock each other.

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

-- The SQL API -----------------------------------------------------------------------

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
