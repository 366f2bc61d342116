-- LOCAL STAND-IN FOR THE SUPABASE VAULT EXTENSION (supabase_vault), NEVER DEPLOYED.
-- Installed into the local PostgreSQL as the extension `tether_standin_supabase_vault`
-- by `npm run stack:up`, created and registered as `supabase_vault` by
-- sql/local/supabase.sql where the server has no real Vault, so `vault.create_secret` and `vault.decrypted_secrets`
-- exist with Supabase's names and signatures. Secrets are encrypted at rest
-- with pgcrypto under a key kept in the server configuration
-- (`tether_local.vault_key`), not in the database, as the real Vault keeps its
-- root key outside the database.

create schema vault;

create table vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index secrets_name_idx on vault.secrets (name) where name is not null;

create function vault._key() returns text
language plpgsql stable
as $$
declare
  k text := current_setting('tether_local.vault_key', true);
begin
  if coalesce(k, '') = '' then
    raise exception 'vault stand-in: tether_local.vault_key is not set in postgresql.conf';
  end if;
  return k;
end
$$;

create function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default '',
  new_key_id uuid default null
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  rec_id uuid;
begin
  insert into vault.secrets (name, description, secret, key_id)
  values (
    new_name,
    coalesce(new_description, ''),
    encode(extensions.pgp_sym_encrypt(new_secret, vault._key()), 'base64'),
    new_key_id
  )
  returning id into rec_id;
  return rec_id;
end
$$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null,
  new_key_id uuid default null
) returns void
language plpgsql
set search_path = ''
as $$
begin
  update vault.secrets s
     set secret = coalesce(encode(extensions.pgp_sym_encrypt(new_secret, vault._key()), 'base64'), s.secret),
         name = coalesce(new_name, s.name),
         description = coalesce(new_description, s.description),
         key_id = coalesce(new_key_id, s.key_id),
         updated_at = now()
   where s.id = secret_id;
end
$$;

create view vault.decrypted_secrets as
select s.id, s.name, s.description, s.secret,
       extensions.pgp_sym_decrypt(decode(s.secret, 'base64'), vault._key()) as decrypted_secret,
       s.key_id, s.nonce, s.created_at, s.updated_at
  from vault.secrets s;

revoke all on schema vault from public;
revoke all on all tables in schema vault from public;
revoke all on all functions in schema vault from public;
