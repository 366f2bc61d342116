-- The provider lists SQL needs, in one place (issue #11). Until now the provider names were
-- written out in provider_is_known (connections, webhook_events), check_provider and
-- oauth_states_provider_is_valid, the streams in every stream_is_valid and again, per provider,
-- in backfill_streams(). tether.providers() now says it once, as the code's registry does
-- (functions-shared/providers/registry.ts: PROVIDERS, each adapter's streams, OAUTH_PROVIDERS);
-- every constraint and function below asks it, and tests/provider_registry_test.ts fails when it
-- and the registry differ. Adding a provider is a migration that replaces tether.providers() and
-- adds its refresh_<provider>_tokens() wrapper.

create function tether.providers()
returns table (provider text, streams text[], oauth boolean)
language sql immutable
set search_path = ''
as $$
  values ('shiphero', array['orders'], false),
         ('shopify', array['orders', 'customers'], true),
         ('lightspeed', array['orders', 'customers'], true),
         ('quickbooks', array['orders', 'customers'], true),
         ('maystro', array['orders'], false)
$$;
comment on function tether.providers() is
  'Every provider Tether knows, the streams it has and whether it connects by OAuth: the one list the constraints, check_provider() and backfill_streams() use. Equal to the registry in functions-shared/providers/registry.ts (tests/provider_registry_test.ts).';

create function tether.is_known_provider(provider text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p where p.provider = is_known_provider.provider)
$$;
comment on function tether.is_known_provider(text) is
  'True when tether.providers() lists the provider.';

create function tether.is_oauth_provider(provider text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p
                  where p.provider = is_oauth_provider.provider and p.oauth)
$$;
comment on function tether.is_oauth_provider(text) is
  'True when tether.providers() lists the provider as connecting by OAuth.';

create function tether.is_known_stream(stream text) returns boolean
language sql immutable
set search_path = ''
as $$
  select exists (select 1 from tether.providers() p where is_known_stream.stream = any(p.streams))
$$;
comment on function tether.is_known_stream(text) is
  'True when some provider in tether.providers() has the stream.';

-- No revoke: like check_provider() and backoff(), these hold no data, and a check constraint runs
-- its function with the rights of whoever writes the row (service_role included).

-- The constraints keep their names (error handling and tests rely on them) and ask the catalog.
alter table tether.connections
  drop constraint provider_is_known,
  add constraint provider_is_known check (tether.is_known_provider(provider));
alter table tether.webhook_events
  drop constraint provider_is_known,
  add constraint provider_is_known check (tether.is_known_provider(provider));
alter table tether.oauth_states
  drop constraint oauth_states_provider_is_valid,
  add constraint oauth_states_provider_is_valid check (tether.is_oauth_provider(provider));
alter table tether.sync_cursors
  drop constraint stream_is_valid,
  add constraint stream_is_valid check (tether.is_known_stream(stream));
alter table tether.backfills
  drop constraint stream_is_valid,
  add constraint stream_is_valid check (tether.is_known_stream(stream));
alter table tether.backfill_records
  drop constraint stream_is_valid,
  add constraint stream_is_valid check (tether.is_known_stream(stream));
-- A run of a stream (sync, backfill) names a known one; refresh and webhook runs name none.
alter table tether.runs
  add constraint stream_is_valid check (stream is null or tether.is_known_stream(stream));

create or replace function tether.check_provider(provider text) returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  if provider is not null and not tether.is_known_provider(provider) then
    raise exception 'unknown provider "%"', provider
      using hint = 'one of ' || (select string_agg(p.provider, ', ') from tether.providers() p)
                   || ', or null for all';
  end if;
  return provider;
end
$$;

create or replace function tether.backfill_streams(provider text) returns text[]
language sql immutable
set search_path = ''
as $$
  select coalesce((select p.streams from tether.providers() p
                    where p.provider = backfill_streams.provider), array[]::text[])
$$;
