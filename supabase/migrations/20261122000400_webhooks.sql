-- Webhooks (issue #6): the retry sweep's SQL API, the connection lookups a delivery needs, and
-- the partial order update for providers whose webhooks carry facts but no record time.

-- A Shopify delivery names its shop by domain (X-Shopify-Shop-Domain), kept in config.shop.
create index connections_shopify_shop_idx on tether.connections ((config ->> 'shop'))
  where provider = 'shopify';

-- The sweep's work: failed events whose retry time has come.
create index webhook_events_failed_idx on tether.webhook_events (next_attempt_at)
  where status = 'failed';

comment on column tether.webhook_events.event_id is
  'The provider''s id of the event: X-Shopify-Webhook-Id, X-Shiphero-Message-ID, the CloudEvents id; a SHA-256 of the body (or of the entity change for legacy QuickBooks notifications) where the provider sends none.';
comment on column tether.webhook_events.attempts is
  'How many times the event was processed (1 for an event processed at once; never more than one successful processing).';

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

create function public.process_webhook_events() returns bigint
language sql
security definer
set search_path = ''
as $$
  select tether.invoke_function('webhooks/_sweep', '{}'::jsonb)
$$;
comment on function public.process_webhook_events() is
  'The webhook retry sweep, scheduled every minute: asks the webhooks function to process again the failed events whose next attempt (tether.backoff) has come. Returns the pg_net request id.';
revoke all on function public.process_webhook_events() from public, anon, authenticated;
