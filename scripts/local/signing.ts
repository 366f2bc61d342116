// HMAC-SHA256 signatures as the providers compute them, for the tests and benchmarks that play a
// provider's side of a webhook. Written apart from functions-shared/crypto.ts on purpose: a test
// that signed with the code it checks would agree with it whatever that code did.

export async function hmacSha256(secret: string, body: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
}

/** Base64 of the HMAC (Shopify, ShipHero, QuickBooks). */
export async function hmacBase64(secret: string, body: string): Promise<string> {
  return btoa(String.fromCharCode(...await hmacSha256(secret, body)));
}

/** Lower-case hex of the HMAC (Lightspeed's default). */
export async function hmacHex(secret: string, body: string): Promise<string> {
  return Array.from(await hmacSha256(secret, body), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}
