// What every provider's webhook receiver shares: the one way a body is parsed (BadPayload → 400)
// and the timestamp normaliser (common.ts). Signature checks are in webhooks/verify.ts.
import type { z } from "zod";
import { parseJsonText } from "../validation.ts";
import { iso } from "./common.ts";

export { iso };

export {
  matchingSecrets,
  secretsEqual,
  sha256Hex,
  verifyHmac,
  WebhookRejected,
} from "../webhooks/verify.ts";

/** The delivery is genuine but its body is not what the provider documents: 400, nothing stored. */
export class BadPayload extends Error {
  override readonly name = "BadPayload";
}

export function parseJson(raw: Uint8Array): unknown {
  const value = parseJsonText(new TextDecoder().decode(raw));
  if (value === undefined) throw new BadPayload("the body is not JSON");
  return value;
}

export function parsePayload<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BadPayload(`${what}: ${issue?.path.join(".") || "body"}: ${issue?.message}`);
  }
  return parsed.data;
}

/** A header by (lower-case) name, null when absent. */
export function header(headers: Readonly<Record<string, string>>, name: string): string | null {
  return headers[name] ?? null;
}

/**
 * A time a delivery's body claims, as ISO 8601 UTC, never later than the delivery's receipt: a
 * replayed or forged body cannot freeze a record until a date in the future.
 */
export function notAfter(text: string, receivedAt: Date): string {
  const claimed = iso(text);
  return Date.parse(claimed) > receivedAt.getTime() ? receivedAt.toISOString() : claimed;
}
