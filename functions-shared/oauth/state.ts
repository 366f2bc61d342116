// The OAuth `state`: a JWT (HS256, TETHER_OAUTH_STATE_SECRET) that binds a callback to the start
// that asked for it: which provider (`aud`), which owner, which account (Shopify's shop), a nonce (`jti`,
// spent once in tether.oauth_states) and an expiry. Verification is jose's, at the caller's clock.

import { errors, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import type { OAuthProvider } from "../providers/registry.ts";

export const STATE_ISSUER = "tether-connect";
/** How long a person has between `start` and the callback. */
export const STATE_LIFETIME_SECONDS = 10 * 60;

export interface StateClaims {
  provider: OAuthProvider;
  nonce: string;
  ownerId: string | null;
  /** The account the start named (Shopify's shop); the callback must name the same one. */
  account?: string;
  /** The connection's name, when the start named one. */
  name?: string;
  expiresAt: Date;
}

const Payload = z.object({
  jti: z.string().min(16).max(128),
  exp: z.number(),
  owner: z.uuid().nullable(),
  account: z.string().optional(),
  name: z.string().max(200).optional(),
});

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export function audience(provider: OAuthProvider): string {
  return `connect/${provider}`;
}

export async function signState(
  secret: string,
  claims: Omit<StateClaims, "nonce" | "expiresAt">,
  now: Date,
  lifetimeSeconds = STATE_LIFETIME_SECONDS,
): Promise<{ state: string; nonce: string }> {
  const nonce = crypto.randomUUID();
  const iat = Math.floor(now.getTime() / 1000);
  const payload: Record<string, unknown> = { owner: claims.ownerId };
  if (claims.account !== undefined) payload.account = claims.account;
  if (claims.name !== undefined) payload.name = claims.name;
  const state = await new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(STATE_ISSUER)
    .setAudience(audience(claims.provider))
    .setJti(nonce)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetimeSeconds)
    .sign(key(secret));
  return { state, nonce };
}

/** Why a state was refused; each reason has its own plain-words page. */
export type StateProblem = "missing" | "invalid" | "expired" | "wrong_provider";

export class StateRejected extends Error {
  override readonly name = "StateRejected";
  constructor(readonly problem: StateProblem) {
    super(`oauth state ${problem}`);
  }
}

export async function verifyState(
  secret: string,
  state: string | null,
  provider: OAuthProvider,
  now: Date,
): Promise<StateClaims> {
  if (state === null || state === "") throw new StateRejected("missing");
  let payload;
  try {
    ({ payload } = await jwtVerify(state, key(secret), {
      algorithms: ["HS256"],
      issuer: STATE_ISSUER,
      requiredClaims: ["exp", "jti", "aud"],
      currentDate: now,
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new StateRejected("expired");
    throw new StateRejected("invalid");
  }
  // Checked after the signature, so only a genuine state for another provider says so.
  if (payload.aud !== audience(provider)) throw new StateRejected("wrong_provider");
  const parsed = Payload.safeParse(payload);
  if (!parsed.success) throw new StateRejected("invalid");
  const p = parsed.data;
  const claims: StateClaims = {
    provider,
    nonce: p.jti,
    ownerId: p.owner,
    expiresAt: new Date(p.exp * 1000),
  };
  if (p.account !== undefined) claims.account = p.account;
  if (p.name !== undefined) claims.name = p.name;
  return claims;
}
