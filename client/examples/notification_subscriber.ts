// Receives Tether's notifications and verifies them before trusting a byte: the Standard Webhooks
// scheme (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md) with
// WebCrypto only. The signature is HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}"
// keyed by the base64-decoded secret (after "whsec_"), sent as "v1,<base64>" in a space-separated
// list; a timestamp outside the tolerance is refused (a replay).

export interface TetherNotification {
  /** "run.changes", "connection.status_changed" or "backfill.ended". */
  type: string;
  /** When the event happened (ISO 8601); an attempt's own time is webhook-timestamp. */
  timestamp: string;
  data: Record<string, unknown>;
}

export class NotificationRefused extends Error {}

const TOLERANCE_SECONDS = 5 * 60;
const encoder = new TextEncoder();

function base64ToBytes(text: string) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Equal strings, in time that does not depend on where they differ. */
function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ (y[i % y.length] ?? 0);
  return diff === 0;
}

/**
 * The notification in `body` if its headers prove Tether sent it with `secret` (the `whsec_…`
 * that `tether.subscribe` returned) within the last 5 minutes; otherwise NotificationRefused.
 * `body` must be the raw text received: parsing and serializing it again changes the bytes.
 */
export async function verifyNotification(
  secret: string,
  headers: Headers,
  body: string,
  nowMs = Date.now(),
): Promise<TetherNotification> {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signatures = headers.get("webhook-signature");
  if (!id || !timestamp || !signatures) throw new NotificationRefused("missing webhook headers");
  const seconds = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || Math.abs(nowMs / 1000 - seconds) > TOLERANCE_SECONDS) {
    throw new NotificationRefused("webhook-timestamp is outside the tolerance");
  }
  const key = await crypto.subtle.importKey(
    "raw",
    base64ToBytes(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`));
  const expected = `v1,${bytesToBase64(new Uint8Array(mac))}`;
  if (!signatures.split(" ").some((s) => constantTimeEqual(s, expected))) {
    throw new NotificationRefused("no matching signature");
  }
  return JSON.parse(body) as TetherNotification;
}

/**
 * A request handler for Deno.serve (an Edge Function, or any Deno server): verifies, hands the
 * notification and its webhook-id (the same on every retry: use it to process each event once) to
 * `onNotification`, and answers 204. A refused request gets 401 and is not handed on; an error
 * thrown by `onNotification` becomes a 500, so Tether retries later.
 */
export function notificationHandler(
  secret: string,
  onNotification: (notification: TetherNotification, webhookId: string) => Promise<void> | void,
): (req: Request) => Promise<Response> {
  return async (req) => {
    if (req.method !== "POST") return new Response(null, { status: 405 });
    const body = await req.text();
    let notification: TetherNotification;
    try {
      notification = await verifyNotification(secret, req.headers, body);
    } catch (err) {
      if (err instanceof NotificationRefused) {
        return Response.json({ error: err.message }, { status: 401 });
      }
      throw err;
    }
    await onNotification(notification, req.headers.get("webhook-id")!);
    return new Response(null, { status: 204 });
  };
}
