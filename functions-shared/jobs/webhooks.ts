// The webhooks function: `POST /webhooks/<provider>[/…]`. In a fixed order (docs/architecture.md rule 7,
// STYLE "standard-webhooks"): POST only; the raw body, at most 1 MiB (413); the provider's
// signature on those bytes, in constant time (401 and nothing stored when it is missing, wrong,
// or no secret is configured); only then the body is parsed. Each event is recorded once in
// tether.webhook_events by its provider id; a repeat is acknowledged and not processed again.
// The answer goes out once the events are recorded (docs/architecture.md "Webhooks: answer
// first"): providers give an answer 3 s (QuickBooks) or 5 s (Shopify, Lightspeed), so no provider
// round trip may come before it. The events are processed after the answer, as background work
// the HTTP frame keeps alive (`Background`: EdgeRuntime.waitUntil). Processing goes through the
// sync's newer-wins upsert (or re-fetches what a notification names), so an older event arriving
// late changes nothing. A processing failure keeps the event as `failed`, and processing cut off
// (its worker killed, its budget spent) leaves it `received`; `POST /webhooks/_sweep`
// (caller-authenticated, called by process_webhook_events()) retries the first with backoff and
// finishes the second once its processing lease has passed.
//
// How each delivery is verified and routed to its connection:
// - shopify    /webhooks/shopify: X-Shopify-Hmac-Sha256 (or Shopify Events' shopify-hmac-sha256)
//   = base64 HMAC of the body with SHOPIFY_CLIENT_SECRET or SHOPIFY_PREVIOUS_CLIENT_SECRET;
//   X-Shopify-Shop-Domain → the connection whose config.shop (or external id) is that domain;
//   id = the topic and a SHA-256 of the signed body (a replay under a fresh webhook id is a repeat).
// - shiphero   /webhooks/shiphero/<connection_id>: X-ShipHero-HMAC-SHA256 = base64 HMAC with the
//   secret of the delivery's webhook type (`webhook_secret_<type>`, each webhook's
//   shared_signature_secret; a single `webhook_secret` still verifies every type); id = SHA-256
//   of the signed body (X-Shiphero-Message-ID is unsigned; a fresh one on a replay changes nothing).
// - quickbooks /webhooks/quickbooks: intuit-signature = base64 HMAC with
//   QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN; each event's realm (realmId / intuitaccountid) → the
//   connection with that external id; id = the CloudEvents id, or a hash of the entity change.
// - lightspeed /webhooks/lightspeed: X-Signature `signature=…,algorithm=HMAC-SHA256`, HMAC with
//   LIGHTSPEED_CLIENT_SECRET (hex by default); the form's `domain_prefix` → the connection with
//   that external id; id = SHA-256 of the body (Lightspeed sends none).
// - maystro    /webhooks/maystro/<connection_id>/<secret>: the secret compared in constant time
//   with the connection's `webhook_secret`; id = SHA-256 of the body; processing re-fetches.
import { z } from "zod";
import {
  connectionByConfigOrExternalId,
  connectionByExternalId,
  type ConnectionRow,
  getConnection,
} from "../db/connections.ts";
import { readCredentials } from "../db/credentials.ts";
import { insertRun } from "../db/runs.ts";
import { applyOrderFacts, upsertRecords } from "../db/records.ts";
import {
  claimDue,
  markFailed,
  markIgnored,
  markProcessed,
  recordEvent,
  type WebhookEventRow,
} from "../db/webhook_events.ts";
import { Deadline, type Deps } from "../deps.ts";
import { coerceError, JobError } from "../errors.ts";
import { adapterFor } from "../providers/registry.ts";
import { countUnknownStatuses } from "../providers/order_status.ts";
import {
  isProviderName,
  type ProviderName,
  type ProviderWebhooks,
  type WebhookHeaders,
  type WebhookProcessSink,
  type WebhookReceiveSink,
} from "../providers/types.ts";
import { BadPayload, WebhookRejected } from "../providers/webhook.ts";
import { adapterContext, connectionRef, withAccessToken } from "./tokens.ts";

const uuid = z.uuid();

/** The receiver of a provider, undefined when it is not one or has none. */
export function webhooksOf(provider: string | undefined): ProviderWebhooks | undefined {
  return provider !== undefined && isProviderName(provider)
    ? adapterFor(provider).webhooks
    : undefined;
}

export function notFound(): JobError {
  return new JobError(
    "not_found",
    "POST /webhooks/<provider>: shopify, shiphero, quickbooks, lightspeed, maystro",
  );
}

export interface Delivery {
  provider: string | undefined;
  headers: WebhookHeaders;
  raw: Uint8Array;
  /** The path after /webhooks/<provider>. */
  path: readonly string[];
}

export interface ReceiveResult {
  /** Events the delivery held. */
  received: number;
  /** Events recorded to be processed after the answer. */
  accepted: number;
  duplicates: number;
  ignored: number;
}

/**
 * Keeps work going after the answer (the HTTP frame's EdgeRuntime.waitUntil); the work never
 * rejects.
 */
export type Background = (work: Promise<void>) => void;

/**
 * Receives one delivery: verifies it and records its events, then hands their processing to
 * `background` and returns without waiting for it. JobError not_found (no such receiver),
 * unauthorized (not verified, nothing stored), invalid_body, receive_failed; the counts, or the
 * provider's ack, otherwise.
 */
export async function receiveWebhook(
  deps: Deps,
  delivery: Delivery,
  background: Background,
): Promise<ReceiveResult | Readonly<Record<string, string>>> {
  const webhooks = webhooksOf(delivery.provider);
  if (!webhooks) throw notFound();
  const provider = delivery.provider as ProviderName;
  let events;
  try {
    events = await webhooks.receive(receiveSink(deps, provider), delivery);
  } catch (err) {
    if (err instanceof WebhookRejected) {
      deps.log.warn("webhook rejected", { provider, reason: err.message });
      throw new JobError("unauthorized", "the webhook could not be verified");
    }
    if (err instanceof BadPayload) throw new JobError("invalid_body", err.message);
    throw recordFailed(deps, provider, err);
  }
  const result: ReceiveResult = { received: events.length, accepted: 0, duplicates: 0, ignored: 0 };
  const accepted: WebhookEventRow[] = [];
  const receivedAt = deps.now();
  try {
    for (const event of events) {
      const active = event.connection && event.connection.status !== "disabled";
      const row = await recordEvent(deps.db, {
        provider,
        event_id: event.eventId,
        connection_id: event.connection?.id ?? null,
        topic: event.topic,
        status: active ? "received" : "ignored",
        payload: event.payload,
        received_at: receivedAt,
      });
      if (!row) result.duplicates++;
      else if (!active) result.ignored++;
      else accepted.push(row);
    }
  } catch (err) {
    // What was recorded before the failure is processed: the provider's retry finds it a repeat.
    if (accepted.length > 0) background(processAccepted(deps, accepted));
    throw recordFailed(deps, provider, err);
  }
  result.accepted = accepted.length;
  if (accepted.length > 0) background(processAccepted(deps, accepted));
  return webhooks.ack ?? result;
}

function recordFailed(deps: Deps, provider: ProviderName, err: unknown): JobError {
  deps.log.error("webhook receive failed", { provider, error: coerceError(err).message });
  return new JobError("receive_failed", "the webhook could not be recorded; retry");
}

/**
 * Processes the events a delivery recorded, one after another, until the job's budget is spent.
 * Never rejects: an event it does not finish stays `received` and the sweep takes it when its
 * processing lease has passed.
 */
async function processAccepted(deps: Deps, rows: WebhookEventRow[]): Promise<void> {
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs, deps.env.cpuBudgetMs);
  for (const [i, row] of rows.entries()) {
    if (deadline.passed) {
      deps.log.warn("webhook processing stopped at its budget; the sweep finishes it", {
        provider: row.provider,
        left: rows.length - i,
      });
      return;
    }
    try {
      await processRow(deps, row);
    } catch (err) {
      deps.log.error("webhook processing could not be recorded; the sweep finishes it", {
        provider: row.provider,
        event_id: row.event_id,
        error: coerceError(err).message,
      });
    }
  }
}

function receiveSink(deps: Deps, provider: ProviderName): WebhookReceiveSink<ConnectionRow> {
  return {
    secrets: deps.env.webhooks,
    misconfigured: (fields) =>
      deps.log.error("webhook secret is not configured", { provider, ...fields }),
    connectionByExternalId: (id) => connectionByExternalId(deps.db, provider, id),
    connectionByConfigOrExternalId: (key, value) =>
      connectionByConfigOrExternalId(deps.db, provider, key, value),
    connectionInPath: (id, what) => pathConnection(deps, id, what),
  };
}

/** A connection named in the path, with its per-connection webhook secrets; rejected otherwise. */
async function pathConnection(
  deps: Deps,
  id: string | undefined,
  what: string,
): Promise<{ connection: ConnectionRow; secrets: Record<string, string> }> {
  if (!id || !uuid.safeParse(id).success) {
    throw new WebhookRejected(`${what}: no connection in the URL`);
  }
  const connection = await getConnection(deps.db, id);
  if (!connection) throw new WebhookRejected(`${what}: unknown connection`);
  const { values } = await readCredentials(deps.db, deps.vault, connection.id);
  const secrets = Object.fromEntries(
    Object.entries(values).filter(([field, value]) =>
      /^webhook_secret(?:_[a-z0-9_]+)?$/.test(field) && value !== ""
    ),
  );
  if (Object.keys(secrets).length === 0) {
    deps.log.error("webhook secret is not configured", {
      provider: connection.provider,
      connection_id: id,
    });
    throw new WebhookRejected(`${what}: no webhook secret is configured for the connection`);
  }
  return { connection, secrets };
}

function processSink(deps: Deps, connectionId: string): WebhookProcessSink {
  return {
    upsert: async (stream, records) => {
      await upsertRecords(deps.db, stream, connectionId, records);
      // No run per event: a word the status mapping does not know is logged (stored as unknown).
      const unknown = countUnknownStatuses(records, new Map());
      if (unknown.length > 0) {
        deps.log.warn("order status words the mapping does not know; stored as unknown", {
          connection_id: connectionId,
          words: unknown,
        });
      }
    },
    applyOrderFacts: (facts) => applyOrderFacts(deps.db, connectionId, facts),
    withAccessToken: (fn) =>
      withAccessToken(
        deps,
        connectionId,
        (creds, conn) => fn(adapterContext(deps), connectionRef(conn), creds),
      ),
  };
}

// ---------------------------------------------------------------------------------------------
// Processing (from the stored row only, so the sweep does exactly what the receiver did)

/**
 * Processes one recorded event: processed; ignored when its connection no longer exists (deleted
 * since it arrived: retrying cannot help); else why it failed (kept for the sweep).
 */
async function processRow(
  deps: Deps,
  row: WebhookEventRow,
): Promise<"processed" | "ignored" | { error: string }> {
  try {
    const connectionId = row.connection_id;
    if (!connectionId) {
      await markIgnored(deps.db, row.id, "its connection no longer exists (it was deleted)");
      return "ignored";
    }
    const webhooks = webhooksOf(row.provider);
    if (!webhooks) throw new Error(`unknown provider ${row.provider}`);
    await webhooks.process(processSink(deps, connectionId), {
      topic: row.topic ?? "",
      payload: row.payload as Record<string, unknown>,
      receivedAt: row.received_at,
    });
    await markProcessed(deps.db, row.id);
    return "processed";
  } catch (err) {
    const error = coerceError(err);
    deps.log.warn("webhook processing failed", {
      provider: row.provider,
      event_id: row.event_id,
      error: error.message,
    });
    await markFailed(deps.db, row.id, error.message);
    return { error: error.message };
  }
}

export const sweepInput = z.strictObject({ force: z.boolean().optional() });

// ---------------------------------------------------------------------------------------------
// The sweep

export interface SweepResult {
  claimed: number;
  processed: number;
  /** Events whose connection was deleted since they arrived: marked ignored, not retried. */
  ignored: number;
  failed: number;
}

/**
 * Processes failed events whose retry time has come (all failed ones with `force`) and received
 * events whose processing was cut off (their lease has passed). A sweep that
 * claimed anything, or was forced, is recorded in tether.runs (kind webhook, no connection), so
 * `npm run tether -- runs --kind webhook` shows it.
 */
export async function sweepWebhookEvents(
  deps: Deps,
  opts: { force?: boolean; limit?: number } = {},
): Promise<SweepResult> {
  const started = deps.now();
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs, deps.env.cpuBudgetMs);
  const result: SweepResult = { claimed: 0, processed: 0, ignored: 0, failed: 0 };
  let lastError: string | undefined;
  while (!deadline.passed) {
    const rows = await claimDue(deps.db, { limit: opts.limit ?? 50, force: opts.force ?? false });
    if (rows.length === 0) break;
    result.claimed += rows.length;
    for (const row of rows) {
      const outcome = await processRow(deps, row);
      if (outcome === "processed") result.processed++;
      else if (outcome === "ignored") result.ignored++;
      else {
        result.failed++;
        lastError = `${row.provider} event ${row.event_id}: ${outcome.error}`;
      }
    }
    // Forced: one pass, so an event that fails again is not retried in a loop.
    if (opts.force) break;
  }
  if (result.claimed > 0 || opts.force) {
    await insertRun(deps.db, {
      connection_id: null,
      kind: "webhook",
      status: result.failed > 0 ? "failed" : "succeeded",
      started_at: started,
      finished_at: deps.now(),
      updated_count: result.processed,
      error_count: result.failed,
      error: lastError ?? null,
      details: { sweep: true, force: opts.force ?? false, ...result },
    });
  }
  return result;
}
