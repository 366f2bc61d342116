-- Normalized order statuses (issue #15 item 1).
--
-- tether.orders keeps the provider's own words (status, and the fulfillment word now named
-- provider_fulfillment_status) and gains one vocabulary across providers beside them:
-- financial_status, fulfillment_status, shipping_status (a carrier's) and canceled_at. The
-- adapters compute the normalized values from one mapping
-- (functions-shared/providers/order_status.ts); a word the mapping does not know lands as
-- 'unknown'. A column is null where its concept does not apply to the provider (shipping_status
-- for a store, financial_status for a carrier).
--
-- SQL function bodies are resolved when they run, so after the rename every function that names
-- orders' columns is redefined here: upsert_orders, apply_order_facts (new arguments: the
-- normalized values and canceled_at) and the public.tether_orders view (its select * was expanded
-- when it was created). The change feed's triggers diff whole rows (to_jsonb), so they carry the
-- new columns as they are.

alter table tether.orders rename column fulfillment_status to provider_fulfillment_status;

alter table tether.orders
  add column financial_status text,
  add column fulfillment_status text,
  add column shipping_status text,
  add column canceled_at timestamptz,
  add constraint orders_financial_status_is_valid check (financial_status in ('pending',
    'authorized', 'paid', 'partially_paid', 'refunded', 'partially_refunded', 'voided', 'unknown')),
  add constraint orders_fulfillment_status_is_valid check (fulfillment_status in ('unfulfilled',
    'partial', 'fulfilled', 'restocked', 'on_hold', 'unknown')),
  add constraint orders_shipping_status_is_valid check (shipping_status in ('pending',
    'in_transit', 'out_for_delivery', 'delivered', 'failed_attempt', 'returned', 'canceled',
    'unknown'));

comment on column tether.orders.status is
  'The provider''s own main status word, as received (ShipHero fulfillment_status, Shopify displayFinancialStatus, Lightspeed sale status, QuickBooks Paid/Unpaid/Voided/Deleted, Maystro status name).';
comment on column tether.orders.provider_fulfillment_status is
  'The provider''s own fulfillment word, as received (Shopify displayFulfillmentStatus, ShipHero fulfillment_status); null where the provider has none.';
comment on column tether.orders.financial_status is
  'Normalized: pending, authorized, paid, partially_paid, refunded, partially_refunded, voided, or unknown (a provider word the mapping does not know); null where the provider has no payment state (carriers, warehouses).';
comment on column tether.orders.fulfillment_status is
  'Normalized: unfulfilled, partial, fulfilled, restocked, on_hold, or unknown; null where the provider has no fulfillment state.';
comment on column tether.orders.shipping_status is
  'Normalized, for carriers: pending, in_transit, out_for_delivery, delivered, failed_attempt, returned, canceled, or unknown; null for stores and books.';
comment on column tether.orders.canceled_at is
  'When the order was canceled (or voided), from the provider''s field where it has one; null while not canceled.';

create or replace function tether.upsert_orders(connection_id uuid, records jsonb)
returns table (added integer, updated integer, unchanged integer)
language sql
set search_path = ''
as $$
  with incoming as (
    select * from jsonb_to_recordset(records) as r(
      external_id text, order_number text, status text, provider_fulfillment_status text,
      financial_status text, fulfillment_status text, shipping_status text,
      canceled_at timestamptz, tracking_number text, total_price numeric, currency text,
      customer_external_id text, ordered_at timestamptz, remote_updated_at timestamptz, raw jsonb)
  ), written as (
    insert into tether.orders as o (connection_id, external_id, order_number, status,
      provider_fulfillment_status, financial_status, fulfillment_status, shipping_status,
      canceled_at, tracking_number, total_price, currency, customer_external_id, ordered_at,
      remote_updated_at, raw)
    select upsert_orders.connection_id, i.external_id, i.order_number, i.status,
           i.provider_fulfillment_status, i.financial_status, i.fulfillment_status,
           i.shipping_status, i.canceled_at, i.tracking_number, i.total_price, i.currency,
           i.customer_external_id, i.ordered_at, i.remote_updated_at, i.raw
      from incoming i
     order by i.external_id
    on conflict (connection_id, external_id) do update
       set order_number = excluded.order_number,
           status = excluded.status,
           provider_fulfillment_status = excluded.provider_fulfillment_status,
           financial_status = excluded.financial_status,
           fulfillment_status = excluded.fulfillment_status,
           shipping_status = excluded.shipping_status,
           canceled_at = excluded.canceled_at,
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

-- The forward-only facts of a webhook (ShipHero's Order Canceled): the provider's word and its
-- normalized values move together, under the same rule as before (a canceled order stays
-- canceled; a word replaces only a pending or missing one).
create function tether.order_fact_moves(stored_status text, fact_status text) returns boolean
language sql immutable
set search_path = ''
as $$
  select fact_status is not null
     and stored_status is distinct from 'canceled'
     and (fact_status = 'canceled' or coalesce(stored_status, 'pending') = 'pending')
$$;
comment on function tether.order_fact_moves(text, text) is
  'Whether a webhook''s order fact (its status word) replaces the stored status: a canceled order stays canceled, a cancellation always lands, another word replaces only a pending or missing one.';
revoke all on function tether.order_fact_moves(text, text) from public, anon, authenticated;

drop function tether.apply_order_facts(uuid, text, text, text, text, jsonb);
create function tether.apply_order_facts(
  connection_id uuid,
  external_id text,
  order_number text,
  tracking_number text,
  status text,
  fulfillment_status text,
  shipping_status text,
  canceled_at timestamptz,
  raw jsonb
) returns void
language sql
set search_path = ''
as $$
  insert into tether.orders as o (connection_id, external_id, order_number, status,
    provider_fulfillment_status, fulfillment_status, shipping_status, canceled_at,
    tracking_number, remote_updated_at, raw)
  values (apply_order_facts.connection_id, apply_order_facts.external_id,
          apply_order_facts.order_number, apply_order_facts.status, apply_order_facts.status,
          apply_order_facts.fulfillment_status, apply_order_facts.shipping_status,
          apply_order_facts.canceled_at, apply_order_facts.tracking_number, null,
          apply_order_facts.raw)
  on conflict (connection_id, external_id) do update
     set tracking_number = coalesce(excluded.tracking_number, o.tracking_number),
         status = case when tether.order_fact_moves(o.status, excluded.status)
                       then excluded.status else o.status end,
         provider_fulfillment_status =
           case when tether.order_fact_moves(o.status, excluded.status)
                then excluded.provider_fulfillment_status else o.provider_fulfillment_status end,
         fulfillment_status = case when tether.order_fact_moves(o.status, excluded.status)
                                   then excluded.fulfillment_status else o.fulfillment_status end,
         shipping_status = case when tether.order_fact_moves(o.status, excluded.status)
                                then excluded.shipping_status else o.shipping_status end,
         canceled_at = coalesce(o.canceled_at, excluded.canceled_at),
         order_number = coalesce(o.order_number, excluded.order_number),
         updated_at = now()
$$;
comment on function tether.apply_order_facts(uuid, text, text, text, text, text, text, timestamptz, jsonb) is
  'Applies forward-only order facts from a webhook (a tracking number, a fulfilled or canceled status word with its normalized fulfillment_status / shipping_status and canceled_at) without moving remote_updated_at; a canceled order stays canceled.';
revoke all on function tether.apply_order_facts(uuid, text, text, text, text, text, text, timestamptz, jsonb)
  from public, anon, authenticated;

-- public.tether_orders was created as select * before the new columns: create it again (a view
-- keeps the column list it was created with), with the same comment and privileges.
drop view public.tether_orders;
create view public.tether_orders with (security_invoker = true) as
  select * from tether.orders;
comment on view public.tether_orders is
  'Tether (Data API): orders of the signed-in user''s connections.';
revoke all on public.tether_orders from public, anon, authenticated, service_role;
grant select on public.tether_orders to authenticated, service_role;
