-- Disconnect (issue #14): the SQL API's way to end a connection, through the disconnect function
-- (functions-shared/jobs/disconnect.ts), which revokes the grant at the provider where it can,
-- deletes the credentials, cancels the connection's backfills, and keeps the connection as
-- disabled with its synced records, or deletes it with them.
--
-- pg_net's queue, where the invoke key travels, is readable by every database role, and a
-- revocation cannot be undone. So the call through pg_net carries only the id of a request that
-- disconnect_connection() (service role only) recorded here, and the function takes nothing else
-- from the invoke key: whoever reads the key can at most repeat a disconnect a service-role caller
-- asked for.

create table tether.disconnect_requests (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references tether.connections (id) on delete cascade,
  delete_records boolean not null default false,
  revoke boolean not null default true,
  requested_at timestamptz not null default now()
);
comment on table tether.disconnect_requests is
  'Disconnects asked for through disconnect_connection(), until the disconnect function has done them (it deletes the row in the transaction that ends the connection).';
alter table tether.disconnect_requests enable row level security;
revoke all on tether.disconnect_requests from public, anon, authenticated;
grant all on tether.disconnect_requests to service_role;

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
