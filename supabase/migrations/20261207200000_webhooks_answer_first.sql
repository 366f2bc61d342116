-- Webhooks answer first (docs/architecture.md "Webhooks: answer first"): a delivery is answered
-- once its events are recorded, and they are processed after the answer. A recorded event is
-- `received` with a processing lease in next_attempt_at; the sweep also finishes received events
-- whose lease has passed (their processing was cut off). No schema change: the comments say so.
comment on function public.process_webhook_events() is
  'The webhook sweep, scheduled every minute: asks the webhooks function to process again the failed events whose next attempt (tether.backoff) has come, and the received events whose processing was cut off (their processing lease has passed). Returns the pg_net request id.';

comment on column tether.webhook_events.status is
  'received: recorded and answered, processed after the answer (or by the sweep once its lease has passed); processed; ignored (no active connection); failed (retried by the sweep with backoff).';

comment on column tether.webhook_events.next_attempt_at is
  'received: when its processing lease ends (the sweep then takes it as cut off); failed: when the sweep retries it; held further while a sweep works on it.';

comment on column tether.webhook_events.attempts is
  'How many times the event was processed (1 for an event processed after its answer; never more than one successful processing).';
