-- OAuth connect (issue #7): the nonces of the signed `state`s that were already used, so a
-- callback URL cannot be replayed. The state itself (a JWT signed with TETHER_OAUTH_STATE_SECRET)
-- says which provider and owner it is for and when it expires; a row here says it was spent.

create table tether.oauth_states (
  nonce text not null,
  provider text not null,
  used_at timestamptz not null default now(),
  -- The state's own expiry: rows past it can be deleted (no state that old is accepted anyway).
  expires_at timestamptz not null,
  constraint oauth_states_pkey primary key (nonce),
  constraint oauth_states_nonce_is_valid check (length(nonce) between 16 and 128),
  constraint oauth_states_provider_is_valid check (provider in ('shopify', 'lightspeed', 'quickbooks'))
);
create index oauth_states_expires_at_idx on tether.oauth_states (expires_at);
comment on table tether.oauth_states is
  'OAuth state nonces already used by a callback of the connect function: a second callback with the same state is refused (replay). Rows past expires_at may be deleted.';

alter table tether.oauth_states enable row level security;
revoke all on tether.oauth_states from public, anon, authenticated;
grant all on tether.oauth_states to service_role;
