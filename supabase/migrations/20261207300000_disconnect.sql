-- Disconnect (issue #14): the SQL API's way to end a connection, through the disconnect function
-- (functions-shared/jobs/disconnect.ts), which revokes the grant at the provider where it can,
-- deletes the credentials, cancels the connection's backfills, and keeps the connection as
-- disabled with its synced records, or deletes it with them.

create function public.disconnect_connection(connection_id uuid, delete_records boolean default false,
  revoke boolean default true) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from tether.connections c where c.id = disconnect_connection.connection_id) then
    raise exception 'unknown connection %', connection_id
      using errcode = 'no_data_found',
            hint = 'select id, provider, name, status from tether.connection_health';
  end if;
  return tether.invoke_function('disconnect', jsonb_build_object(
    'connection_id', connection_id,
    'delete_records', coalesce(delete_records, false),
    'revoke', coalesce(revoke, true)));
end
$$;
comment on function public.disconnect_connection(uuid, boolean, boolean) is
  'Ends a connection through the disconnect function: revokes the grant at the provider where it can (revoke), deletes the credentials, cancels its backfills, and keeps it as disabled with its synced records, or deletes it and them (delete_records). Returns the pg_net request id; the outcome is in tether.invocations and tether.connection_health.';
revoke all on function public.disconnect_connection(uuid, boolean, boolean)
  from public, anon, authenticated;
