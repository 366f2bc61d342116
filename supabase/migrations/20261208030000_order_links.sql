-- Orders across providers (issue #15 items 2-3): a fulfillment connection's orders (ShipHero,
-- Maystro) linked to its store's orders (Shopify, Lightspeed, QuickBooks), and the view
-- tether.order_status, one row per store order with its statuses and its carriers' tracking.
--
--   1. The pairs: tether.connection_links, and link_connections() / unlink_connections()
--   2. The match: tether.order_ref(), tether.order_key(), tether.orders_with_key()
--   3. The links: tether.order_links, filled by a trigger on tether.orders (every writer links)
--   4. The feed: a link is a change of the store order
--   5. When a carrier's shipping status changed: tether.shipping_status_changes
--   6. tether.order_status and its Data API view
--
-- Matching rule, per pair: a key of the store order and a key of the fulfillment order whose
-- references must be equal after tether.order_ref() (a leading '#' dropped: Shopify's order
-- `name` is "#1001", a reference another system keeps may be "1001"). Keys:
--   store:       order_number (Shopify `name`, Lightspeed `invoice_number`, QuickBooks
--                `DocNumber`), external_id (the store's own id as Tether stores it)
--   fulfillment: partner_order_id (ShipHero: the store's reference; the official Order Canceled
--                sample, developer.shiphero.com/webhooks/order-canceled-webhook, carries the
--                shop's "9035013-2" as partner_order_id, order_number and shop_order_number
--                alike), order_number (ShipHero's own `order_number`), external_order_id
--                (Maystro: "our order reference", which the Maystro adapter stores as the
--                order's order_number; see functions-shared/providers/maystro/streams.ts)
-- Defaults: ShipHero partner_order_id, Maystro external_order_id, each against the store's
-- order_number: the reference a shop hands its fulfillment provider is the number its customers
-- see; the store's external_id is there for a shop whose own code hands over its ids instead.

-- 1. The pairs ----------------------------------------------------------------------------------

create table tether.connection_links (
  id uuid primary key default gen_random_uuid(),
  store_connection_id uuid not null references tether.connections (id) on delete cascade,
  fulfillment_connection_id uuid not null references tether.connections (id) on delete cascade,
  store_key text not null,
  fulfillment_key text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint connection_links_pair_key unique (store_connection_id, fulfillment_connection_id),
  constraint store_key_is_valid check (store_key in ('order_number', 'external_id')),
  constraint fulfillment_key_is_valid
    check (fulfillment_key in ('partner_order_id', 'order_number', 'external_order_id'))
);
create index connection_links_fulfillment_idx on tether.connection_links (fulfillment_connection_id);
comment on table tether.connection_links is
  'Store connection (shopify, lightspeed, quickbooks) linked to a fulfillment connection (shiphero, maystro) of the same owner, with the matching rule: the store order''s store_key equals the fulfillment order''s fulfillment_key (see tether.order_key). Written by link_connections().';

-- Which providers hold a shop's orders and which fulfil them, and what a fulfillment order is
-- matched on by default: the link catalog, beside tether.providers() (the one other place SQL
-- names providers, tests/provider_registry_test.ts). Tested against the registry
-- (tests/order_links_test.ts).
create function tether.order_link_roles()
returns table (provider text, role text, default_fulfillment_key text)
language sql immutable
set search_path = ''
as $$
  values ('shopify', 'store', null),
         ('lightspeed', 'store', null),
         ('quickbooks', 'store', null),
         ('shiphero', 'fulfillment', 'partner_order_id'),
         ('maystro', 'fulfillment', 'external_order_id')
$$;
comment on function tether.order_link_roles() is
  'Each provider with orders: store or fulfillment, and for a fulfillment provider the key its orders are matched on unless link_connections() is told otherwise (its own reference to the store order).';

create function tether.store_providers() returns text[]
language sql immutable
set search_path = ''
as $$ select array_agg(provider) from tether.order_link_roles() where role = 'store' $$;
create function tether.fulfillment_providers() returns text[]
language sql immutable
set search_path = ''
as $$ select array_agg(provider) from tether.order_link_roles() where role = 'fulfillment' $$;

-- 2. The match ----------------------------------------------------------------------------------

create function tether.order_ref(value text) returns text
language sql immutable parallel safe
return nullif(regexp_replace(value, '^#', ''), '');
comment on function tether.order_ref(text) is
  'An order reference as matched: without a leading # (Shopify''s "#1001" matches "1001"); empty is none.';

create function tether.order_key(key text, o tether.orders) returns text
language sql immutable parallel safe
return case key
  when 'order_number' then tether.order_ref(o.order_number)
  when 'external_order_id' then tether.order_ref(o.order_number)
  when 'partner_order_id' then tether.order_ref(o.raw ->> 'partner_order_id')
  when 'external_id' then o.external_id
end;
comment on function tether.order_key(text, tether.orders) is
  'The reference an order is matched on under a rule''s key (external_order_id is the order_number the Maystro adapter stores it as).';

-- ShipHero's partner_order_id is in raw only; only rows that have it are indexed.
create index orders_partner_order_id_idx
  on tether.orders (connection_id, tether.order_ref(raw ->> 'partner_order_id'))
  where raw ? 'partner_order_id';

-- The orders of a connection whose key is `ref`, through an index for every key: order_number
-- through orders_number_idx (the two spellings order_ref folds together), external_id through
-- the unique key, partner_order_id through orders_partner_order_id_idx.
create function tether.orders_with_key(connection_id uuid, key text, ref text)
returns setof bigint
language plpgsql stable
set search_path = ''
as $$
begin
  if ref is null then
    return;
  elsif key in ('order_number', 'external_order_id') then
    return query select o.id from tether.orders o
      where o.connection_id = orders_with_key.connection_id
        and o.order_number in (ref, '#' || ref) and tether.order_ref(o.order_number) = ref;
  elsif key = 'partner_order_id' then
    return query select o.id from tether.orders o
      where o.connection_id = orders_with_key.connection_id and o.raw ? 'partner_order_id'
        and tether.order_ref(o.raw ->> 'partner_order_id') = ref;
  elsif key = 'external_id' then
    return query select o.id from tether.orders o
      where o.connection_id = orders_with_key.connection_id and o.external_id = ref;
  end if;
end
$$;

-- 3. The links ----------------------------------------------------------------------------------

create table tether.order_links (
  connection_link_id uuid not null references tether.connection_links (id) on delete cascade,
  store_order_id bigint not null references tether.orders (id) on delete cascade,
  fulfillment_order_id bigint not null references tether.orders (id) on delete cascade,
  linked_at timestamptz not null default now(),
  primary key (store_order_id, fulfillment_order_id)
);
create index order_links_fulfillment_idx on tether.order_links (fulfillment_order_id);
create index order_links_connection_link_idx on tether.order_links (connection_link_id);
comment on table tether.order_links is
  'A store order and a fulfillment order of a linked pair of connections whose references match. Filled by the trigger on tether.orders whichever record arrives first (sync, backfill, webhook), never twice.';

-- Links the given orders (either side) under every rule that covers their connection; returns
-- how many links are new. The store orders are locked first, in external_id order as
-- upsert_orders locks them, so a link's change joins its store order's changes in commit order.
create function tether.link_orders(order_ids bigint[]) returns integer
language plpgsql
set search_path = ''
as $$
declare
  found_links uuid[];
  store_ids bigint[];
  fulfillment_ids bigint[];
  added integer;
begin
  select coalesce(array_agg(m.link_id), '{}'), coalesce(array_agg(m.store_id), '{}'),
         coalesce(array_agg(m.fulfillment_id), '{}')
    into found_links, store_ids, fulfillment_ids
    from (
      select l.id as link_id, o.id as store_id, f.id as fulfillment_id
        from tether.orders o
        join tether.connection_links l on l.store_connection_id = o.connection_id
        cross join lateral tether.orders_with_key(l.fulfillment_connection_id, l.fulfillment_key,
                                                  tether.order_key(l.store_key, o)) f(id)
       where o.id = any(order_ids)
      union
      select l.id, s.id, o.id
        from tether.orders o
        join tether.connection_links l on l.fulfillment_connection_id = o.connection_id
        cross join lateral tether.orders_with_key(l.store_connection_id, l.store_key,
                                                  tether.order_key(l.fulfillment_key, o)) s(id)
       where o.id = any(order_ids)
    ) m
   where not exists (select 1 from tether.order_links k
                      where k.store_order_id = m.store_id and k.fulfillment_order_id = m.fulfillment_id);
  if cardinality(store_ids) = 0 then
    return 0;
  end if;
  perform 1 from tether.orders s where s.id = any(store_ids)
    order by s.connection_id, s.external_id for no key update;
  insert into tether.order_links (connection_link_id, store_order_id, fulfillment_order_id)
  select * from unnest(found_links, store_ids, fulfillment_ids)
  on conflict do nothing;
  get diagnostics added = row_count;
  return added;
end
$$;
comment on function tether.link_orders(bigint[]) is
  'Links these orders, store or fulfillment side, to the matching orders of every linked connection; already linked pairs are left alone. Returns the number of new links.';

-- Every writer of tether.orders links (upsert_orders: sync and backfill; apply_order_facts and
-- upsert_orders: webhooks). New orders of a linked connection are matched; an updated order is
-- matched again only when a key it can be matched on changed (a webhook stored it without its
-- reference and the sync brought it), its links under the old key removed first.
create function tether.link_written_orders() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  ids bigint[];
begin
  if not exists (select 1 from tether.connection_links) then
    return null;
  end if;
  if tg_op = 'INSERT' then
    ids := array(
      select n.id from new_rows n
       where exists (select 1 from tether.connection_links l
                      where n.connection_id in (l.store_connection_id, l.fulfillment_connection_id)));
  else
    ids := array(
      select n.id from new_rows n join old_rows o on o.id = n.id
       where (n.order_number is distinct from o.order_number
              or n.raw ->> 'partner_order_id' is distinct from o.raw ->> 'partner_order_id')
         and exists (select 1 from tether.connection_links l
                      where n.connection_id in (l.store_connection_id, l.fulfillment_connection_id)));
    if cardinality(ids) > 0 then
      delete from tether.order_links k
       where k.store_order_id = any(ids) or k.fulfillment_order_id = any(ids);
    end if;
  end if;
  if cardinality(ids) > 0 then
    perform tether.link_orders(ids);
  end if;
  return null;
end
$$;

create trigger orders_link_inserted after insert on tether.orders
  referencing new table as new_rows
  for each statement execute function tether.link_written_orders();
create trigger orders_link_updated after update on tether.orders
  referencing old table as old_rows new table as new_rows
  for each statement execute function tether.link_written_orders();

-- 4. The feed -----------------------------------------------------------------------------------
-- A link is a change of the store order (stream 'orders', op 'updated'), in order with its other
-- changes: fields {"linked": {provider, connection_id, external_id, order_number}} of the
-- fulfillment order, or {"unlinked": {…}} when a link is removed (its key changed, or the pair
-- was unlinked). A fulfillment order's own changes (status, tracking) are its changes as usual.

create function tether.append_link_changes() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into tether.changes (connection_id, stream, record_id, op, fields)
    select s.connection_id, 'orders', s.external_id, 'updated',
           jsonb_build_object('linked', jsonb_build_object(
             'provider', c.provider, 'connection_id', f.connection_id,
             'external_id', f.external_id, 'order_number', f.order_number))
      from new_links k
      join tether.orders s on s.id = k.store_order_id
      join tether.orders f on f.id = k.fulfillment_order_id
      join tether.connections c on c.id = f.connection_id
     order by k.store_order_id, k.fulfillment_order_id;
  else
    insert into tether.changes (connection_id, stream, record_id, op, fields)
    select s.connection_id, 'orders', s.external_id, 'updated',
           jsonb_build_object('unlinked', jsonb_build_object(
             'provider', c.provider, 'connection_id', f.connection_id,
             'external_id', f.external_id, 'order_number', f.order_number))
      from old_links k
      join tether.orders s on s.id = k.store_order_id
      join tether.orders f on f.id = k.fulfillment_order_id
      join tether.connections c on c.id = f.connection_id
     order by k.store_order_id, k.fulfillment_order_id;
  end if;
  return null;
end
$$;

create trigger order_links_feed_inserted after insert on tether.order_links
  referencing new table as new_links
  for each statement execute function tether.append_link_changes();
create trigger order_links_feed_deleted after delete on tether.order_links
  referencing old table as old_links
  for each statement execute function tether.append_link_changes();

-- 1 (continued). Linking two connections: the SQL API ------------------------------------------

create function public.link_connections(store_connection_id uuid,
  fulfillment_connection_id uuid, fulfillment_key text default null,
  store_key text default null)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  store tether.connections;
  fulfillment tether.connections;
  own_key text;
  rule_fulfillment_key text;
  rule_store_key text := coalesce(store_key, 'order_number');
  link_id uuid;
  fulfillment_orders bigint[];
begin
  select * into store from tether.connections c where c.id = store_connection_id;
  select * into fulfillment from tether.connections c where c.id = fulfillment_connection_id;
  if store.id is null or fulfillment.id is null then
    raise exception 'no connection %', case when store.id is null then store_connection_id
                                           else fulfillment_connection_id end
      using errcode = 'no_data_found';
  end if;
  if not store.provider = any(tether.store_providers()) then
    raise exception '% is a % connection, not a store (%)', store.id, store.provider,
      array_to_string(tether.store_providers(), ', ') using errcode = 'invalid_parameter_value';
  end if;
  if not fulfillment.provider = any(tether.fulfillment_providers()) then
    raise exception '% is a % connection, not a fulfillment one (%)', fulfillment.id,
      fulfillment.provider, array_to_string(tether.fulfillment_providers(), ', ')
      using errcode = 'invalid_parameter_value';
  end if;
  if store.owner_id is distinct from fulfillment.owner_id then
    raise exception 'the two connections have different owners' using errcode = 'invalid_parameter_value';
  end if;
  select r.default_fulfillment_key into own_key
    from tether.order_link_roles() r where r.provider = fulfillment.provider;
  rule_fulfillment_key := coalesce(fulfillment_key, own_key);
  if rule_fulfillment_key not in ('order_number', own_key) then
    raise exception 'a % order has no %: match on % or order_number', fulfillment.provider,
      rule_fulfillment_key, own_key using errcode = 'invalid_parameter_value';
  end if;
  if rule_store_key not in ('order_number', 'external_id') then
    raise exception 'a store order is matched on order_number or external_id, not %', rule_store_key
      using errcode = 'invalid_parameter_value';
  end if;

  insert into tether.connection_links as l (store_connection_id, fulfillment_connection_id,
    store_key, fulfillment_key)
  values (store.id, fulfillment.id, rule_store_key, rule_fulfillment_key)
  on conflict on constraint connection_links_pair_key do update
     set store_key = excluded.store_key, fulfillment_key = excluded.fulfillment_key,
         updated_at = now()
   where (l.store_key, l.fulfillment_key) is distinct from (excluded.store_key, excluded.fulfillment_key)
  returning l.id into link_id;
  if link_id is null then
    -- The same rule again: nothing changes (the trigger kept the links up to date).
    select l.id into link_id from tether.connection_links l
     where l.store_connection_id = store.id and l.fulfillment_connection_id = fulfillment.id;
    return link_id;
  end if;
  -- A new rule: the links of the old one go, every fulfillment order is matched anew.
  delete from tether.order_links k where k.connection_link_id = link_id;
  fulfillment_orders := array(select o.id from tether.orders o where o.connection_id = fulfillment.id);
  perform tether.link_orders(fulfillment_orders);
  return link_id;
end
$$;
comment on function public.link_connections(uuid, uuid, text, text) is
  'Links a store connection (shopify, lightspeed, quickbooks) to a fulfillment connection (shiphero, maystro) of the same owner: their orders are linked where the fulfillment order''s fulfillment_key (default: ShipHero partner_order_id, Maystro external_order_id; or order_number) equals the store order''s store_key (default order_number; or external_id), a leading # aside. Links every order already stored; sync, backfill and webhooks link the rest. Calling it again with another rule relinks; with the same rule changes nothing. Returns the link id.';

create function public.unlink_connections(store_connection_id uuid,
  fulfillment_connection_id uuid)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with gone as (
    delete from tether.connection_links l
     where l.store_connection_id = unlink_connections.store_connection_id
       and l.fulfillment_connection_id = unlink_connections.fulfillment_connection_id
    returning 1
  )
  select exists (select 1 from gone)
$$;
comment on function public.unlink_connections(uuid, uuid) is
  'Removes the link between two connections and its order links (each appends an unlinked change). True when there was one.';

revoke all on function public.link_connections(uuid, uuid, text, text),
  public.unlink_connections(uuid, uuid) from public, anon, authenticated;

-- RLS: an owner reads the links of their store connections.
alter table tether.connection_links enable row level security;
alter table tether.order_links enable row level security;
revoke all on tether.connection_links, tether.order_links from public, anon, authenticated;
grant all on tether.connection_links, tether.order_links to service_role;
grant select on tether.connection_links, tether.order_links to authenticated;
create policy connection_links_owner_read on tether.connection_links
  for select to authenticated using (tether.owns_connection(store_connection_id));
create policy order_links_owner_read on tether.order_links
  for select to authenticated using (exists (
    select 1 from tether.connection_links l
     where l.id = connection_link_id and tether.owns_connection(l.store_connection_id)));

-- 5. When a carrier's shipping status changed ---------------------------------------------------
-- An order's row keeps its current shipping_status only; the time it last changed is kept here,
-- one row per order whose shipping_status an update changed: the record's new remote_updated_at
-- when the write brought one (the provider's time), else the time of the write (a webhook's
-- facts). An order never changed since it was first stored has no row: its shipping status dates
-- from its remote_updated_at (tether.order_status says so).

create table tether.shipping_status_changes (
  order_id bigint primary key references tether.orders (id) on delete cascade,
  shipping_status text,
  changed_at timestamptz not null
);
comment on table tether.shipping_status_changes is
  'When an order''s shipping_status last changed (the provider''s update time when the write carried one, else the write''s time); kept by a trigger on tether.orders. Read through tether.order_status.';

create function tether.note_shipping_changes() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from new_rows n where n.shipping_status is not null) then
    return null;
  end if;
  insert into tether.shipping_status_changes as h (order_id, shipping_status, changed_at)
  select n.id, n.shipping_status,
         case when n.remote_updated_at is distinct from o.remote_updated_at
              then coalesce(n.remote_updated_at, now()) else now() end
    from new_rows n join old_rows o on o.id = n.id
   where n.shipping_status is distinct from o.shipping_status
   order by n.id
  on conflict (order_id) do update
     set shipping_status = excluded.shipping_status, changed_at = excluded.changed_at;
  return null;
end
$$;

create trigger orders_shipping_status_changed after update on tether.orders
  referencing old table as old_rows new table as new_rows
  for each statement execute function tether.note_shipping_changes();

alter table tether.shipping_status_changes enable row level security;
revoke all on tether.shipping_status_changes from public, anon, authenticated;
grant all on tether.shipping_status_changes to service_role;
grant select on tether.shipping_status_changes to authenticated;
create policy shipping_status_changes_owner_read on tether.shipping_status_changes
  for select to authenticated using (exists (
    select 1 from tether.orders o where o.id = order_id and tether.owns_connection(o.connection_id)));

-- 6. tether.order_status ------------------------------------------------------------------------
-- One row per store order: its normalized statuses, every tracking number (its own and its
-- fulfillment orders'), and the carrier's latest shipping status with when it changed (of the
-- linked fulfillment orders, the one whose shipping status changed last; one without a shipping
-- status only when none has one: ShipHero, a warehouse, says fulfilled, never delivered, so its
-- records have no shipping_status, and carrier_fulfillment_status says what it did).
-- security_invoker: the tables' RLS decides, so an owner sees
-- only their orders.

create view tether.order_status
with (security_invoker = true)
as
select
  s.id as order_id,
  s.connection_id,
  c.provider,
  s.external_id,
  s.order_number,
  s.ordered_at,
  s.status as provider_status,
  s.financial_status,
  s.fulfillment_status,
  s.canceled_at,
  coalesce(tracking.numbers, '{}') as tracking_numbers,
  carrier.shipping_status,
  carrier.shipping_status_changed_at,
  carrier.fulfillment_status as carrier_fulfillment_status,
  carrier.provider as carrier_provider,
  carrier.connection_id as carrier_connection_id,
  carrier.external_id as carrier_external_id,
  coalesce(tracking.fulfillment_orders, 0) as fulfillment_orders,
  s.remote_updated_at,
  s.updated_at
from tether.orders s
join tether.connections c on c.id = s.connection_id
left join lateral (
  select f.shipping_status, f.fulfillment_status,
         coalesce(h.changed_at, f.remote_updated_at, f.first_seen_at) as shipping_status_changed_at,
         fc.provider, f.connection_id, f.external_id
    from tether.order_links k
    join tether.orders f on f.id = k.fulfillment_order_id
    join tether.connections fc on fc.id = f.connection_id
    left join tether.shipping_status_changes h on h.order_id = f.id
   where k.store_order_id = s.id
   order by f.shipping_status is null, 3 desc, f.id desc
   limit 1
) carrier on true
left join lateral (
  select array_agg(distinct t.number order by t.number)
           filter (where t.number is not null) as numbers,
         (count(*) - 1)::integer as fulfillment_orders
    from (select s.tracking_number as number
          union all
          select f.tracking_number
            from tether.order_links k join tether.orders f on f.id = k.fulfillment_order_id
           where k.store_order_id = s.id) t
) tracking on true
where c.provider = any(tether.store_providers());
comment on view tether.order_status is
  'One row per store order (shopify, lightspeed, quickbooks): its normalized statuses, every tracking number of it and its linked fulfillment orders (sorted), the carrier''s latest shipping status and when it changed (of its linked fulfillment orders, the one changed last), and how many fulfillment orders are linked.';

create view public.tether_order_status with (security_invoker = true) as
  select * from tether.order_status;
comment on view public.tether_order_status is
  'Tether (Data API): tether.order_status for the signed-in user''s orders.';
revoke all on tether.order_status, public.tether_order_status
  from public, anon, authenticated, service_role;
grant select on tether.order_status, public.tether_order_status to authenticated, service_role;
