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

-- 1. Tables ------------------------------------------------------------------------------------

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

-- 2. Appending ---------------------------------------------------------------------------------

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

-- 3. Publishing, reading, acknowledging ---------------------------------------------------------

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

-- 4. Retention: cleanup also prunes acknowledged changes ----------------------------------------

drop function tether.cleanup(interval);
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

-- 5. The Data API's door: supabase-js rpc() reaches functions in the exposed schema (public), as
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
