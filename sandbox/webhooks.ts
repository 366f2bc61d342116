/**
 * Webhook senders: each provider renders an account's recent changes (sandbox/data.ts
 * `takeChanges`) as its own signed deliveries; this module sends them to a receiver the way the
 * providers do: at least once (a share duplicated with the same id and body), in no particular
 * order, retried a few times on anything but a 2xx.
 */
import type { Change } from "./data.ts";
import { prng } from "./data.ts";

export interface WebhookMessage {
  /** The provider's delivery id (or a description when it sends none): for the report only. */
  id: string;
  headers: Record<string, string>;
  body: string;
}

export interface WebhookBuildOptions {
  /** Sign with this instead of the provider's real secret (a wrong-secret delivery). */
  secret?: string;
  /**
   * QuickBooks: the CloudEvents array (default) or the legacy `eventNotifications` body. Maystro:
   * the nested `{event, payload}` body (default), the same in a push envelope's base64
   * `message.data` ("pubsub"), or flat.
   */
  format?: "cloudevents" | "legacy" | "nested" | "pubsub" | "flat";
  /** Shopify: classic `X-Shopify-*` headers (default) or Shopify Events' `shopify-*`. */
  headerStyle?: "classic" | "events";
}

export interface WebhookSender {
  /** The deliveries for these changes; changes the provider sends no webhook for are skipped. */
  build(
    items: { account: string; change: Change }[],
    opts: WebhookBuildOptions,
  ): Promise<WebhookMessage[]>;
}

export interface DeliveryOptions {
  url: string;
  /** Share of deliveries sent a second time, 0…1. */
  duplicateShare: number;
  shuffle: boolean;
  seed: number;
  /** Attempts per delivery (the first included) while the receiver answers non-2xx. */
  attempts: number;
  retryDelayMs: number;
  concurrency: number;
}

export interface DeliveryReport {
  id: string;
  status: number;
  attempts: number;
  duplicate: boolean;
}

export async function hmacSha256(secret: string, body: string): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(body)));
}

export function base64(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Sends every message (plus duplicates, shuffled), retrying each like a provider does. */
export async function deliver(
  messages: WebhookMessage[],
  opts: DeliveryOptions,
): Promise<DeliveryReport[]> {
  const random = prng(opts.seed);
  const queue: { message: WebhookMessage; duplicate: boolean }[] = messages.map((message) => ({
    message,
    duplicate: false,
  }));
  for (const message of messages) {
    if (random() < opts.duplicateShare) queue.push({ message, duplicate: true });
  }
  if (opts.shuffle) {
    for (let i = queue.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [queue[i], queue[j]] = [queue[j]!, queue[i]!];
    }
  }
  const reports: DeliveryReport[] = new Array(queue.length);
  let next = 0;
  async function worker() {
    while (next < queue.length) {
      const index = next++;
      const { message, duplicate } = queue[index]!;
      let status = 0;
      let attempts = 0;
      while (attempts < opts.attempts) {
        attempts++;
        try {
          const res = await fetch(opts.url, {
            method: "POST",
            headers: message.headers,
            body: message.body,
          });
          await res.body?.cancel();
          status = res.status;
        } catch {
          status = 0;
        }
        if (status >= 200 && status < 300) break;
        if (attempts < opts.attempts) await new Promise((r) => setTimeout(r, opts.retryDelayMs));
      }
      reports[index] = { id: message.id, status, attempts, duplicate };
    }
  }
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.concurrency, queue.length)) }, worker),
  );
  return reports;
}
