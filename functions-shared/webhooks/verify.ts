// Webhook signature checks (docs/architecture.md rule 7): on the raw bytes, before anything is parsed,
// in constant time. One error type, `WebhookRejected`, means "reject this delivery" (401, nothing
// stored); a receiver without its secret configured rejects too (fail closed) and says so in its
// log, never in the answer and never with the secret.

import { constantTimeEqual, decodeHex, hmacSha256, sha256 } from "../crypto.ts";

/** The delivery is not proven genuine: 401, nothing stored. The message is safe to show. */
export class WebhookRejected extends Error {
  override readonly name = "WebhookRejected";
}

/** The body is larger than the receiver accepts: 413, nothing stored. */
export class PayloadTooLarge extends Error {
  override readonly name = "PayloadTooLarge";
}

export const MAX_BODY_BYTES = 1024 * 1024;

/** Reads the raw body, refusing more than `max` bytes (by Content-Length and while reading). */
export async function readRawBody(req: Request, max = MAX_BODY_BYTES): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    throw new PayloadTooLarge(`the body is larger than ${max} bytes`);
  }
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw new PayloadTooLarge(`the body is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

export { constantTimeEqual, hmacSha256, sha256Hex } from "../crypto.ts";

/** Compares two texts in constant time by comparing their SHA-256 digests (equal lengths). */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([sha256(a), sha256(b)]);
  return constantTimeEqual(da, db);
}

function decodeBase64(text: string): Uint8Array | undefined {
  try {
    const bin = atob(text.trim());
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/**
 * Checks `signature` (base64 or hex of HMAC-SHA256 of the raw body) against every configured
 * secret; every secret is tried, so the time does not say which one matched. No secret or no
 * signature: rejected.
 */
export async function verifyHmac(
  body: Uint8Array,
  signature: string | null,
  secrets: readonly string[],
  encoding: "base64" | "hex",
  what: string,
): Promise<void> {
  await matchingSecrets(body, signature, secrets, encoding, what);
}

/**
 * `verifyHmac` that also says which secrets signed the body (their indexes in `secrets`), for a
 * provider that issues one secret per kind of delivery (ShipHero: one per webhook type).
 */
export async function matchingSecrets(
  body: Uint8Array,
  signature: string | null,
  secrets: readonly string[],
  encoding: "base64" | "hex",
  what: string,
): Promise<number[]> {
  if (secrets.length === 0) throw new WebhookRejected(`${what}: no secret is configured`);
  if (signature === null || signature.trim() === "") {
    throw new WebhookRejected(`${what}: the signature header is missing`);
  }
  const presented = encoding === "base64" ? decodeBase64(signature) : decodeHex(signature);
  if (!presented) throw new WebhookRejected(`${what}: the signature is malformed`);
  const matched: number[] = [];
  for (const [i, secret] of secrets.entries()) {
    if (constantTimeEqual(await hmacSha256(secret, body), presented)) matched.push(i);
  }
  if (matched.length === 0) throw new WebhookRejected(`${what}: the signature does not match`);
  return matched;
}
