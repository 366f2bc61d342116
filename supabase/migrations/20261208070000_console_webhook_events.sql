-- The web console (issue #18) shows a connection's webhook events to the signed-in user who owns
-- it. Until now tether.webhook_events had no policy (service role and the functions only). A user
-- now reads the bookkeeping columns of their own connections' events, under RLS as every other
-- table: never `payload` (the provider's body) and never the provider's event id.

grant select (id, provider, connection_id, topic, status, attempts, next_attempt_at, last_error,
              received_at, processed_at)
  on tether.webhook_events to authenticated;

create policy webhook_events_owner_read on tether.webhook_events
  for select to authenticated using (tether.owns_connection(connection_id));
