-- The extensions Tether needs, enabled the way Supabase documents them, so a
-- project where Cron, pg_net or Vault is still off gets them from the
-- migrations and sql/schedules.sql finds cron.job.
--
-- pg_cron: "create extension pg_cron with schema pg_catalog; grant usage on
-- schema cron to postgres; grant all privileges on all tables in schema cron
-- to postgres;" (https://supabase.com/docs/guides/cron/install). pg_cron can
-- only be created in the database named by cron.database_name (its install
-- script raises "can only create extension in database …"), which on Supabase
-- is `postgres`, where the migrations run. Elsewhere (the local stack's test
-- databases, cloned from a template) the schedules have no place to live, so
-- this says so and goes on.
do $$
begin
  if current_database() = current_setting('cron.database_name', true) then
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres;
    grant all privileges on all tables in schema cron to postgres;
  elsif current_setting('cron.database_name', true) is null then
    raise notice 'pg_cron is not loaded in this server: Tether''s schedules (sql/schedules.sql) need it';
  else
    raise notice 'pg_cron lives in database %, not %: Tether''s schedules are installed there',
      current_setting('cron.database_name', true), current_database();
  end if;
end
$$;

-- pg_net in the `extensions` schema, where the dashboard puts it (its objects
-- live in `net` either way; the extension's own schema is what the Security
-- Advisor's "extension in public" check reads). The first migration created
-- it without a schema, which registers it in `public` on a project that had
-- not enabled it; pg_net is not relocatable, so it is created again in
-- `extensions`. Its queue and responses are unlogged scratch tables. If
-- something of the project's own depends on pg_net's objects, or the role
-- may not drop it, it stays where it is, with a warning.
do $$
declare
  home name;
begin
  select n.nspname into home
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'pg_net';
  if home is null then
    create extension pg_net with schema extensions;
  elsif home = 'public' then
    begin
      drop extension pg_net;
      create extension pg_net with schema extensions;
    exception when dependent_objects_still_exist or insufficient_privilege then
      raise warning 'pg_net stays registered in schema public: %', sqlerrm;
    end;
  end if;
end
$$;

-- Vault: enabled in every Supabase project; created here for a project or
-- database where it is not.
create extension if not exists supabase_vault;
