/**
 * Random tokens and their fingerprints.
 *
 * Tokens are 192 random bits in hex behind a provider-looking prefix, so they
 * are unguessable. A fingerprint (first 12 hex of sha256) is what the control
 * API shows instead of a token: stats and inspection never reveal raw tokens.
 * (WebCrypto, not node:crypto: this project does not install @types/node.)
 */

const TOKEN_BYTES = 24;

export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let out = "";
  for (const b of buf) out += b.toString(16).padStart(2, "0");
  return out;
}

export function randomToken(prefix: string): string {
  return prefix + randomHex(TOKEN_BYTES);
}

export async function fingerprint(token: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
  );
  let out = "";
  for (const b of digest.subarray(0, 6)) out += b.toString(16).padStart(2, "0");
  return out;
}
