// Caller auth for every Edge Function except `webhooks` (see docs/architecture.md, "Caller auth").
//
// A caller is let in with either
// - a Supabase secret API key (`apikey` header or `Authorization: Bearer <key>`), compared in
//   constant time against every key in SUPABASE_SECRET_KEYS, or
// - a JWT (`Authorization: Bearer <jwt>`) whose `role` claim is `service_role`, verified with jose
//   against SUPABASE_JWKS, the project's JWKS endpoint, or the legacy HS256 SUPABASE_JWT_SECRET.
//
// The functions pg_cron reaches (the serveJob functions and the webhook sweep) also let in
// - Tether's invoke key (`x-tether-invoke-key` header, compared in constant time with
//   TETHER_INVOKE_KEY): what the SQL API sends through pg_net, whose queue every database role may
//   read. It starts jobs and nothing else: `connect`, its OAuth and key-ring routes refuse it, and
//   it is no Supabase API key, so the Data API refuses it too.
//
// Anything else throws `Unauthorized` (a 401, nothing done). A missing or malformed configuration
// is a plain Error when the config is built, never a 401 and never an open door. No message ever
// contains a presented credential or a configured secret.

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { constantTimeEqual, sha256 } from "./crypto.ts";
import { parseJsonText } from "./validation.ts";
import { z } from "zod";

export type CallerAuthConfig = {
  secretKeys: string[];
  jwks?: JSONWebKeySet;
  jwksUrl?: URL;
  jwtSecret?: string;
  /** TETHER_INVOKE_KEY: the key pg_cron's calls carry (Vault secret `tether_invoke_key`). */
  invokeKey?: string;
};

export type Caller =
  | { via: "secret_key" }
  | { via: "jwt"; claims: JWTPayload }
  | { via: "invoke_key" }
  /** A signed-in Supabase Auth user (role `authenticated`), only with `acceptUsers`. */
  | { via: "user"; userId: string; claims: JWTPayload };

/** Where the SQL API's calls through pg_net carry the invoke key (tether.invoke_function). */
export const INVOKE_KEY_HEADER = "x-tether-invoke-key";
/** TETHER_INVOKE_KEY's minimum length: deploy generates 32 random bytes, base64url (43). */
export const INVOKE_KEY_MIN_CHARS = 32;

export type CallerAuthOptions = {
  /** Let the invoke key in: only for the functions pg_cron reaches. */
  acceptInvokeKey?: boolean;
  /**
   * Let a signed-in user in too: a Supabase Auth JWT with role `authenticated` and a UUID `sub`,
   * verified as any JWT. Only for the console, which reads as that user under RLS.
   */
  acceptUsers?: boolean;
};

/** The request is rejected: 401. The message says what was wrong in general terms and is safe to show. */
export class Unauthorized extends Error {
  override readonly name = "Unauthorized";
}

const JWKS_ALGORITHMS = ["ES256", "RS256", "EdDSA"];
const SECRET_ALGORITHMS = ["HS256"];
const CLOCK_TOLERANCE_SECONDS = 5;
const JWKS_PATH = "/auth/v1/.well-known/jwks.json";

const SecretKeys = z.union([z.record(z.string(), z.string()), z.array(z.string())]);
const Jwks = z.object({ keys: z.array(z.looseObject({ kty: z.string() })) });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ASYMMETRIC_KTY = new Set(["EC", "RSA", "OKP"]);

/**
 * Reads SUPABASE_SECRET_KEYS, SUPABASE_JWKS, SUPABASE_URL and SUPABASE_JWT_SECRET. Throws an Error
 * naming the variable when one is malformed, and when none of them allows any caller in.
 */
export function callerAuthConfigFromEnv(
  get: (name: string) => string | undefined,
): CallerAuthConfig {
  const config: CallerAuthConfig = { secretKeys: [] };

  const secretKeysText = nonEmpty(get("SUPABASE_SECRET_KEYS"));
  if (secretKeysText !== undefined) {
    const parsed = SecretKeys.safeParse(parseJsonText(secretKeysText));
    if (!parsed.success) {
      throw new Error(
        "SUPABASE_SECRET_KEYS must be JSON: an object of key names to keys, or an array of keys",
      );
    }
    config.secretKeys = Object.values(parsed.data).filter((key) => key.trim() !== "");
    if (config.secretKeys.length === 0) {
      throw new Error("SUPABASE_SECRET_KEYS has no usable keys (all are empty)");
    }
  }

  const jwksText = nonEmpty(get("SUPABASE_JWKS"));
  const supabaseUrl = nonEmpty(get("SUPABASE_URL"));
  if (jwksText !== undefined) {
    const parsed = Jwks.safeParse(parseJsonText(jwksText));
    if (!parsed.success) {
      throw new Error('SUPABASE_JWKS must be a JSON Web Key Set: {"keys":[...]}');
    }
    if (!parsed.data.keys.some((key) => ASYMMETRIC_KTY.has(key.kty))) {
      throw new Error("SUPABASE_JWKS has no usable public keys (kty EC, RSA or OKP)");
    }
    config.jwks = parsed.data as JSONWebKeySet;
  } else if (supabaseUrl !== undefined) {
    config.jwksUrl = jwksUrlFor(supabaseUrl);
  }

  const jwtSecret = nonEmpty(get("SUPABASE_JWT_SECRET"));
  if (jwtSecret !== undefined) config.jwtSecret = jwtSecret;

  const invokeKey = nonEmpty(get("TETHER_INVOKE_KEY"));
  if (invokeKey !== undefined) {
    if (invokeKey.length < INVOKE_KEY_MIN_CHARS) {
      throw new Error(`TETHER_INVOKE_KEY must be at least ${INVOKE_KEY_MIN_CHARS} characters`);
    }
    // pg_net's queue, where this key waits, is readable by every role: a Supabase API key or
    // JWT here would hand whoever reads it the project.
    if (
      invokeKey.startsWith("sb_") || looksLikeJwt(invokeKey) ||
      config.secretKeys.includes(invokeKey) || invokeKey === jwtSecret
    ) {
      throw new Error(
        "TETHER_INVOKE_KEY must be a key of its own, not a Supabase API key, JWT or JWT secret",
      );
    }
    config.invokeKey = invokeKey;
  }

  assertUsable(config);
  return config;
}

/**
 * Returns the check each function runs before doing anything: it resolves to the caller or
 * throws `Unauthorized`. Key digests, the HMAC key and the JWKS are imported once and reused.
 * A failure that is not the caller's fault (the JWKS endpoint is unreachable) is a plain Error.
 */
export function createCallerAuth(
  config: CallerAuthConfig,
  options: CallerAuthOptions = {},
): (req: Request) => Promise<Caller> {
  assertUsable(config);
  const keyDigests = config.secretKeys.length > 0
    ? Promise.all(config.secretKeys.map(sha256))
    : Promise.resolve([]);
  const invokeDigest = options.acceptInvokeKey && config.invokeKey !== undefined
    ? sha256(config.invokeKey)
    : undefined;
  const jwks: JWTVerifyGetKey | undefined = config.jwks
    ? createLocalJWKSet(config.jwks)
    : config.jwksUrl
    ? createRemoteJWKSet(config.jwksUrl)
    : undefined;
  const hmacKey = config.jwtSecret === undefined ? undefined : importHmacKey(config.jwtSecret);
  // An unhandled rejection here would only resurface on first use; keep it for then.
  keyDigests.catch(() => {});
  invokeDigest?.catch(() => {});
  hmacKey?.catch(() => {});

  /** The invoke key, when this route accepts it; throws when it is presented and wrong. */
  async function checkInvokeKey(presented: string): Promise<void> {
    if (!options.acceptInvokeKey) {
      throw new Unauthorized(
        "the invoke key is not accepted here: send a secret API key or a service_role JWT",
      );
    }
    if (invokeDigest === undefined) {
      throw new Unauthorized("this function has no TETHER_INVOKE_KEY: the invoke key is refused");
    }
    if (!constantTimeEqual(await sha256(presented), await invokeDigest)) {
      throw new Unauthorized("wrong invoke key");
    }
  }

  async function isSecretKey(presented: string | undefined): Promise<boolean> {
    const digests = await keyDigests;
    if (presented === undefined || digests.length === 0) return false;
    const digest = await sha256(presented);
    let matches = 0;
    for (const known of digests) matches |= constantTimeEqual(digest, known) ? 1 : 0;
    return matches === 1;
  }

  async function verifyJwt(token: string): Promise<JWTPayload> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new Unauthorized("malformed token");
    }
    const options: JWTVerifyOptions = {
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["exp"],
    };
    let payload: JWTPayload;
    try {
      if (typeof alg === "string" && SECRET_ALGORITHMS.includes(alg) && hmacKey) {
        ({ payload } = await jwtVerify(token, await hmacKey, {
          ...options,
          algorithms: SECRET_ALGORITHMS,
        }));
      } else if (typeof alg === "string" && JWKS_ALGORITHMS.includes(alg) && jwks) {
        payload = await verifyWithKeySet(token, jwks, { ...options, algorithms: JWKS_ALGORITHMS });
      } else {
        throw new Unauthorized("token algorithm not accepted");
      }
    } catch (err) {
      throw asUnauthorized(err);
    }
    return payload;
  }

  /** The caller a verified JWT stands for: service_role, or a user where users are let in. */
  function jwtCaller(claims: JWTPayload): Caller {
    if (claims.role === "service_role") return { via: "jwt", claims };
    if (options.acceptUsers && claims.role === "authenticated") {
      if (typeof claims.sub !== "string" || !UUID.test(claims.sub)) {
        throw new Unauthorized("invalid token claim: sub");
      }
      return { via: "user", userId: claims.sub, claims };
    }
    throw new Unauthorized(
      options.acceptUsers
        ? "wrong role: a signed-in user or a service_role token is required"
        : "wrong role: a service_role token is required",
    );
  }

  return async (req) => {
    const invokeKey = nonEmpty(req.headers.get(INVOKE_KEY_HEADER));
    if (invokeKey !== undefined) {
      await checkInvokeKey(invokeKey);
      return { via: "invoke_key" };
    }
    const apikey = nonEmpty(req.headers.get("apikey"));
    const authorization = nonEmpty(req.headers.get("authorization"));
    const bearer = authorization?.match(/^Bearer[ \t]+(\S+)$/i)?.[1];
    if (apikey === undefined && bearer === undefined) {
      throw new Unauthorized(
        authorization === undefined
          ? "missing credentials: send a secret API key (apikey header) or a service_role JWT (Authorization: Bearer)"
          : "malformed Authorization header: expected 'Bearer <token>'",
      );
    }
    // Both candidates are always compared, so timing does not tell which one matched.
    const [apikeyMatches, bearerMatches] = await Promise.all([
      isSecretKey(apikey),
      isSecretKey(bearer),
    ]);
    if (apikeyMatches || bearerMatches) return { via: "secret_key" };
    if (bearer !== undefined && looksLikeJwt(bearer)) {
      return jwtCaller(await verifyJwt(bearer));
    }
    if (bearer !== undefined && !bearer.startsWith("sb_")) {
      throw new Unauthorized("malformed token: neither a known API key nor a JWT");
    }
    throw new Unauthorized("unknown API key");
  };
}

/** A 401 with `{"error":"unauthorized","message":...}`; the message is the error's, never a credential. */
export function unauthorizedResponse(err: Unauthorized): Response {
  return Response.json({ error: "unauthorized", message: err.message }, {
    status: 401,
    headers: { "cache-control": "no-store", "www-authenticate": "Bearer" },
  });
}

function assertUsable(config: CallerAuthConfig): void {
  if (config.jwtSecret === "") throw new Error("SUPABASE_JWT_SECRET is set but empty");
  if (config.secretKeys.some((key) => key.trim() === "")) {
    throw new Error("caller auth: a secret key is empty");
  }
  const hasJwtSource = config.jwks !== undefined || config.jwksUrl !== undefined ||
    config.jwtSecret !== undefined;
  if (config.secretKeys.length === 0 && !hasJwtSource) {
    throw new Error(
      "caller auth is not configured: set SUPABASE_SECRET_KEYS, or SUPABASE_JWKS / SUPABASE_URL / SUPABASE_JWT_SECRET for JWT callers",
    );
  }
}

function nonEmpty(value: string | null | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

function jwksUrlFor(supabaseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(supabaseUrl.replace(/\/+$/, "") + JWKS_PATH);
  } catch {
    throw new Error("SUPABASE_URL is not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error("SUPABASE_URL must be an http(s) URL");
  }
  return url;
}

function importHmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
}

function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

/** jwtVerify against a key set, trying each candidate when several keys match the header. */
async function verifyWithKeySet(
  token: string,
  jwks: JWTVerifyGetKey,
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, jwks, options)).payload;
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    const candidates = err as errors.JWKSMultipleMatchingKeys & AsyncIterable<CryptoKey>;
    for await (const key of candidates) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/** Maps what jose reports about the caller's token to a 401; anything else stays a plain Error. */
function asUnauthorized(err: unknown): Error {
  if (err instanceof Unauthorized) return err;
  if (err instanceof errors.JWTExpired) return new Unauthorized("token expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    return new Unauthorized(`invalid token claim: ${err.claim}`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new Unauthorized("token signature invalid");
  }
  if (err instanceof errors.JWKSNoMatchingKey) return new Unauthorized("unknown signing key");
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new Unauthorized("token algorithm not accepted");
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return new Unauthorized("malformed token");
  }
  return new Error("caller auth: could not verify the token", { cause: err });
}
