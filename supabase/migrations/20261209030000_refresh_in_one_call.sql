-- A token refresh's outcome in one call: the new credentials, the connection's state and the run.
--
-- The refresh job wrote them in a transaction of five statements (lock the connection, compare the
-- credentials' version, write the credentials, record the refresh, insert the run), seven round
-- trips with BEGIN and COMMIT. `npm run bench -- refresh` runs every concurrent invocation in one
-- worker, one thread: its CPU per refresh went mostly to those round trips. The same statements,
-- in the same order and under the same lock, now run here in one call. As before, the rotated
-- refresh token is written in the transaction that records the refresh, and only if the
-- credentials are still the ones the refresh read (`version`, what db/credentials.ts versionOf
-- computes: the last 16 characters of each ciphertext, by field): otherwise nothing is written and
-- the call answers false (a reconnect or another worker replaced them meanwhile).
create function tether.record_token_refresh(connection_id uuid, owner text, version text,
  sealed jsonb, refreshed_at timestamptz, token_expires_at timestamptz,
  refresh_token_expires_at timestamptz, rotated boolean, started_at timestamptz)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  conn uuid := record_token_refresh.connection_id;
begin
  -- Held until the call's transaction ends: credentials change one writer at a time.
  perform 1 from tether.connections c where c.id = conn for update;
  if coalesce((select string_agg(right(cr.ciphertext, 16), ',' order by cr.field)
                 from tether.credentials cr where cr.connection_id = conn), '')
     <> version then
    return false;
  end if;
  insert into tether.credentials (connection_id, field, ciphertext)
  select conn, s.field, s.ciphertext
    from jsonb_to_recordset(sealed) as s(field text, ciphertext text)
  on conflict on constraint credentials_pkey do update
     set ciphertext = excluded.ciphertext, updated_at = now();
  update tether.connections c
     set status = 'active',
         token_expires_at = record_token_refresh.token_expires_at,
         refresh_token_expires_at = coalesce(record_token_refresh.refresh_token_expires_at,
                                             c.refresh_token_expires_at),
         refresh_token_issued_at = case when rotated then refreshed_at
                                        else c.refresh_token_issued_at end,
         last_token_refresh_at = refreshed_at,
         consecutive_failures = 0,
         next_attempt_at = null,
         last_error = null,
         last_error_at = null,
         lease_owner = case when c.lease_owner = owner then null else c.lease_owner end,
         lease_expires_at = case when c.lease_owner = owner then null else c.lease_expires_at end,
         updated_at = now()
   where c.id = conn;
  insert into tether.runs (connection_id, kind, status, started_at, finished_at, details)
  values (conn, 'refresh', 'succeeded', record_token_refresh.started_at, refreshed_at,
          jsonb_build_object('rotated', rotated));
  return true;
end
$$;
comment on function tether.record_token_refresh(uuid, text, text, jsonb, timestamptz,
  timestamptz, timestamptz, boolean, timestamptz) is
  'A successful token refresh: writes the new credentials, the connection''s state and the run if the credentials are still at `version`; false (nothing written) otherwise.';
revoke all on function tether.record_token_refresh(uuid, text, text, jsonb, timestamptz,
  timestamptz, timestamptz, boolean, timestamptz) from public, anon, authenticated;
