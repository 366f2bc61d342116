-- LOCAL STAND-IN, NEVER DEPLOYED.
-- What every Supabase project already has and a plain Debian PostgreSQL does
-- not: the API roles, the `auth` helpers that read PostgREST's request claims,
-- the `extensions` schema, and the Vault. Applied by `npm run stack:up` to the
-- local databases before the migrations; idempotent.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- PostgREST puts the verified JWT's claims in `request.jwt.claims` for each
-- request (older versions: one `request.jwt.claim.<name>` per claim); these
-- read them exactly as Supabase's own definitions do.
create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

-- pg_net and Vault: the real extensions where this server preloads them (as Supabase's does; the
-- stack preloads them when its PostgreSQL has them installed, scripts/local/postgres.ts), else
-- the stand-ins. These are installed as tether_standin_pg_net and tether_standin_supabase_vault,
-- names that cannot overwrite a real extension's files, and registered here under the real names,
-- so the migrations' `create extension if not exists pg_net` / `supabase_vault` find them and
-- stay what runs on Supabase. A real extension's custom settings exist only once its library is
-- loaded: that is the test for "preloaded".
do $$
begin
  if not exists (select from pg_extension where extname = 'pg_net')
     and current_setting('pg_net.database_name', true) is null then
    create extension tether_standin_pg_net with schema extensions;
    update pg_catalog.pg_extension set extname = 'pg_net' where extname = 'tether_standin_pg_net';
  end if;
  -- Supabase ships the Vault enabled in every project.
  if exists (select from pg_extension where extname = 'supabase_vault') then
    null;
  elsif current_setting('vault.getkey_script', true) is null then
    create extension tether_standin_supabase_vault;
    update pg_catalog.pg_extension set extname = 'supabase_vault'
     where extname = 'tether_standin_supabase_vault';
  else
    create extension supabase_vault;
  end if;
end
$$;

-- Supabase grants the API roles everything new in `public` by default, which
-- is why every SQL API function revokes execute from anon and authenticated.
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
