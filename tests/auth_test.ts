import assert from "node:assert/strict";
import { type CryptoKey, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import {
  type Caller,
  type CallerAuthConfig,
  callerAuthConfigFromEnv,
  type CallerAuthOptions,
  createCallerAuth,
  Unauthorized,
  unauthorizedResponse,
} from "../functions-shared/auth.ts";

const SECRET_KEY = "sb_secret_tEsTkEy0123456789abcdefGHIJKLMNOPqrstuv";
const OTHER_SECRET_KEY = "sb_secret_rotatedKey9876543210zyxwvuTSRQPONMLKJ";
const JWT_SECRET = "legacy-jwt-secret-with-at-least-thirty-two-characters";
const KID = "test-key-1";
const INVOKE_KEY = "tEsT-iNvOkE-kEy_0123456789abcdefghijkl";

const signingPair = await generateKeyPair("ES256");
const strangerPair = await generateKeyPair("ES256");
const publicJwk = {
  ...(await exportJWK(signingPair.publicKey)),
  kid: KID,
  alg: "ES256",
  use: "sig",
};
const JWKS = { keys: [publicJwk] };

type TokenOptions = {
  key?: CryptoKey | Uint8Array;
  alg?: string;
  kid?: string | undefined;
  claims?: JWTPayload;
  expiresAt?: number | string;
};

/** A valid service_role ES256 token for the local JWKS, unless one option changes that. */
function serviceToken(options: TokenOptions = {}): Promise<string> {
  const alg = options.alg ?? "ES256";
  const kid = "kid" in options ? options.kid : KID;
  return new SignJWT({ role: "service_role", ...options.claims })
    .setProtectedHeader(kid === undefined ? { alg, typ: "JWT" } : { alg, typ: "JWT", kid })
    .setIssuer("supabase")
    .setIssuedAt()
    .setExpirationTime(options.expiresAt ?? "5m")
    .sign(options.key ?? signingPair.privateKey);
}

function legacyToken(secret: string): Promise<string> {
  return serviceToken({
    alg: "HS256",
    kid: undefined,
    key: new TextEncoder().encode(secret),
  });
}

function request(headers: Record<string, string>): Request {
  return new Request("http://localhost/functions/v1/refresh-tokens", {
    method: "POST",
    headers,
    body: "{}",
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const keysOnly: CallerAuthConfig = { secretKeys: [SECRET_KEY] };
const jwksOnly: CallerAuthConfig = { secretKeys: [], jwks: JWKS };
const secretOnly: CallerAuthConfig = { secretKeys: [], jwtSecret: JWT_SECRET };
const everything: CallerAuthConfig = {
  secretKeys: [SECRET_KEY, OTHER_SECRET_KEY],
  jwks: JWKS,
  jwtSecret: JWT_SECRET,
};

/**
 * Asserts the request is refused with Unauthorized whose message matches, and that the 401
 * response is JSON with that message and does not contain any of the presented credentials.
 */
async function assertRejected(
  config: CallerAuthConfig,
  req: Request,
  message: RegExp,
  presented: string[],
  options: CallerAuthOptions = {},
): Promise<void> {
  let thrown: unknown;
  await assert.rejects(
    createCallerAuth(config, options)(req),
    (err) => {
      thrown = err;
      return true;
    },
    "expected Unauthorized",
  );
  assert.ok(thrown instanceof Unauthorized, `expected Unauthorized, got ${String(thrown)}`);
  assert.match(thrown.message, message);
  const response = unauthorizedResponse(thrown);
  assert.equal(response.status, 401);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const text = await response.text();
  assert.deepEqual(JSON.parse(text), { error: "unauthorized", message: thrown.message });
  for (const credential of presented) {
    assert.ok(!text.includes(credential), "the 401 body must not contain the presented credential");
    assert.ok(!thrown.message.includes(credential));
  }
  for (const configured of [SECRET_KEY, OTHER_SECRET_KEY, JWT_SECRET, INVOKE_KEY]) {
    assert.ok(!text.includes(configured), "the 401 body must not contain a configured secret");
  }
}

async function assertAccepted(config: CallerAuthConfig, req: Request): Promise<Caller> {
  return await createCallerAuth(config)(req);
}

// --- secret API keys ---

Deno.test("a secret key in the apikey header is accepted", async () => {
  assert.deepEqual(await assertAccepted(everything, request({ apikey: SECRET_KEY })), {
    via: "secret_key",
  });
});

Deno.test("a secret key as Authorization: Bearer is accepted", async () => {
  assert.deepEqual(await assertAccepted(everything, request(bearer(SECRET_KEY))), {
    via: "secret_key",
  });
});

Deno.test("every key in SUPABASE_SECRET_KEYS is accepted, not only the first", async () => {
  assert.deepEqual(await assertAccepted(everything, request({ apikey: OTHER_SECRET_KEY })), {
    via: "secret_key",
  });
});

Deno.test("a request without credentials is rejected as missing credentials", async () => {
  await assertRejected(everything, request({}), /missing credentials/, []);
});

Deno.test("an Authorization header that is not Bearer is rejected as malformed", async () => {
  const value = `Basic ${btoa(`service:${SECRET_KEY}`)}`;
  await assertRejected(everything, request({ authorization: value }), /malformed Authorization/, [
    value,
    SECRET_KEY,
  ]);
});

Deno.test("a bearer that is neither a JWT nor a key is rejected as malformed", async () => {
  const presented = "not-a-key-and-not-a-jwt";
  await assertRejected(everything, request(bearer(presented)), /malformed token/, [presented]);
});

Deno.test("a key that differs only in its last character is rejected", async () => {
  const presented = SECRET_KEY.slice(0, -1) + (SECRET_KEY.endsWith("v") ? "w" : "v");
  await assertRejected(everything, request({ apikey: presented }), /unknown API key/, [presented]);
});

Deno.test("a key of a different length is rejected", async () => {
  const presented = SECRET_KEY + "x";
  await assertRejected(everything, request({ apikey: presented }), /unknown API key/, [presented]);
});

Deno.test("a secret key is rejected when only JWT callers are configured", async () => {
  await assertRejected(jwksOnly, request({ apikey: SECRET_KEY }), /unknown API key/, [
    SECRET_KEY,
  ]);
});

// --- JWTs against a local JWKS ---

Deno.test("an ES256 service_role JWT is accepted against a local JWKS", async () => {
  const caller = await assertAccepted(jwksOnly, request(bearer(await serviceToken())));
  assert.equal(caller.via, "jwt");
  assert.equal(caller.via === "jwt" ? caller.claims.role : undefined, "service_role");
});

Deno.test("a service_role JWT is accepted beside a non-matching apikey (publishable key)", async () => {
  const req = request({ apikey: "sb_publishable_abc", ...bearer(await serviceToken()) });
  assert.equal((await assertAccepted(everything, req)).via, "jwt");
});

Deno.test("an expired JWT is rejected", async () => {
  const token = await serviceToken({ expiresAt: Math.floor(Date.now() / 1000) - 60 });
  await assertRejected(jwksOnly, request(bearer(token)), /expired/, [token]);
});

Deno.test("a JWT without exp is rejected", async () => {
  const token = await new SignJWT({ role: "service_role" })
    .setProtectedHeader({ alg: "ES256", kid: KID })
    .sign(signingPair.privateKey);
  await assertRejected(jwksOnly, request(bearer(token)), /claim: exp/, [token]);
});

Deno.test("a JWT with role authenticated is rejected", async () => {
  const token = await serviceToken({ claims: { role: "authenticated" } });
  await assertRejected(jwksOnly, request(bearer(token)), /wrong role/, [token]);
});

Deno.test("a JWT signed by another key with the same kid is rejected", async () => {
  const token = await serviceToken({ key: strangerPair.privateKey });
  await assertRejected(jwksOnly, request(bearer(token)), /signature invalid/, [token]);
});

Deno.test("a JWT with an unknown kid is rejected", async () => {
  const token = await serviceToken({ kid: "some-other-key" });
  await assertRejected(jwksOnly, request(bearer(token)), /unknown signing key/, [token]);
});

Deno.test("a JWT whose payload was altered after signing is rejected", async () => {
  const [header, , signature] = (await serviceToken({ claims: { role: "anon" } })).split(".");
  const payload = btoa(JSON.stringify({ role: "service_role", exp: 9999999999 }))
    .replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
  const token = `${header}.${payload}.${signature}`;
  await assertRejected(jwksOnly, request(bearer(token)), /signature invalid/, [token]);
});

Deno.test("an alg none token is rejected", async () => {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
  const now = Math.floor(Date.now() / 1000);
  const token = `${encode({ alg: "none", typ: "JWT" })}.${
    encode({ role: "service_role", iat: now, exp: now + 300 })
  }.`;
  await assertRejected(everything, request(bearer(token)), /algorithm not accepted/, [token]);
});

Deno.test("a garbage three-part bearer is rejected as malformed", async () => {
  const token = "abc.def.ghi";
  await assertRejected(everything, request(bearer(token)), /malformed token/, [token]);
});

// --- legacy HS256 secret ---

Deno.test("an HS256 service_role JWT signed with the legacy secret is accepted", async () => {
  const caller = await assertAccepted(secretOnly, request(bearer(await legacyToken(JWT_SECRET))));
  assert.equal(caller.via, "jwt");
});

Deno.test("an HS256 JWT signed with a wrong secret is rejected", async () => {
  const token = await legacyToken(JWT_SECRET + "-but-not-quite");
  await assertRejected(secretOnly, request(bearer(token)), /signature invalid/, [token]);
});

Deno.test("an HS256 JWT is rejected when no legacy secret is configured", async () => {
  const token = await legacyToken(JWT_SECRET);
  await assertRejected(jwksOnly, request(bearer(token)), /algorithm not accepted/, [token]);
});

// --- remote JWKS ---

Deno.test("a JWT is verified against the project's JWKS endpoint from SUPABASE_URL", async () => {
  let fetches = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/auth/v1/.well-known/jwks.json") {
      return new Response("not found", { status: 404 });
    }
    fetches++;
    return Response.json(JWKS);
  });
  try {
    const env: Record<string, string> = {
      SUPABASE_URL: `http://127.0.0.1:${server.addr.port}/`,
    };
    const config = callerAuthConfigFromEnv((name) => env[name]);
    assert.equal(
      config.jwksUrl?.href,
      `http://127.0.0.1:${server.addr.port}/auth/v1/.well-known/jwks.json`,
    );
    const auth = createCallerAuth(config);
    const first = await auth(request(bearer(await serviceToken())));
    const second = await auth(request(bearer(await serviceToken())));
    assert.equal(first.via, "jwt");
    assert.equal(second.via, "jwt");
    assert.equal(fetches, 1, "the JWKS is fetched once and cached");

    const forged = await serviceToken({ key: strangerPair.privateKey });
    await assertRejected(config, request(bearer(forged)), /signature invalid/, [forged]);
  } finally {
    await server.shutdown();
  }
});

// --- the invoke key (what pg_net carries: only the functions pg_cron reaches accept it) ---

const withInvokeKey: CallerAuthConfig = { secretKeys: [SECRET_KEY], invokeKey: INVOKE_KEY };
const invoked = (key: string) => request({ "x-tether-invoke-key": key });
const jobRoute: CallerAuthOptions = { acceptInvokeKey: true };

Deno.test("the invoke key is accepted where the route accepts it", async () => {
  const caller = await createCallerAuth(withInvokeKey, jobRoute)(invoked(INVOKE_KEY));
  assert.deepEqual(caller, { via: "invoke_key" });
});

Deno.test("the invoke key is refused by a route that does not accept it, whatever comes with it", async () => {
  for (
    const req of [
      invoked(INVOKE_KEY),
      request({ "x-tether-invoke-key": INVOKE_KEY, apikey: SECRET_KEY }),
    ]
  ) {
    await assertRejected(withInvokeKey, req, /^the invoke key is not accepted here/, [INVOKE_KEY]);
  }
});

Deno.test("a wrong invoke key is refused: last character, length, the service key", async () => {
  const wrong = [
    INVOKE_KEY.slice(0, -1) + "X",
    INVOKE_KEY + "x",
    INVOKE_KEY.slice(0, -1),
    SECRET_KEY,
  ];
  for (const key of wrong) {
    await assertRejected(withInvokeKey, invoked(key), /^wrong invoke key$/, [key], jobRoute);
  }
});

Deno.test("the invoke key is refused when the function has no TETHER_INVOKE_KEY", async () => {
  await assertRejected(
    keysOnly,
    invoked(INVOKE_KEY),
    /no TETHER_INVOKE_KEY/,
    [INVOKE_KEY],
    jobRoute,
  );
});

Deno.test("the invoke key is no API key: as apikey or bearer it is refused", async () => {
  for (const headers of [{ apikey: INVOKE_KEY }, bearer(INVOKE_KEY)]) {
    await assertRejected(withInvokeKey, request(headers), /./, [INVOKE_KEY], jobRoute);
  }
});

Deno.test("secret keys still work on a route that accepts the invoke key", async () => {
  const caller = await createCallerAuth(withInvokeKey, jobRoute)(request({ apikey: SECRET_KEY }));
  assert.deepEqual(caller, { via: "secret_key" });
});

Deno.test("config reads TETHER_INVOKE_KEY and refuses one that is short or a Supabase credential", () => {
  const keys = JSON.stringify([SECRET_KEY]);
  const config = callerAuthConfigFromEnv((name) =>
    ({ SUPABASE_SECRET_KEYS: keys, TETHER_INVOKE_KEY: ` ${INVOKE_KEY} ` })[name]
  );
  assert.deepEqual(config, { secretKeys: [SECRET_KEY], invokeKey: INVOKE_KEY });
  const short = configError({ SUPABASE_SECRET_KEYS: keys, TETHER_INVOKE_KEY: "short-key" });
  assert.match(short.message, /^TETHER_INVOKE_KEY must be at least 32 characters$/);
  for (
    const value of [
      SECRET_KEY,
      "sb_secret_anotherKeyOfTheProject0123456789",
      "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2ln",
      JWT_SECRET,
    ]
  ) {
    const err = configError({
      SUPABASE_SECRET_KEYS: keys,
      SUPABASE_JWT_SECRET: JWT_SECRET,
      TETHER_INVOKE_KEY: value,
    });
    assert.match(err.message, /^TETHER_INVOKE_KEY must be a key of its own/);
    assert.ok(!err.message.includes(value));
  }
});

// --- configuration ---

Deno.test("config reads SUPABASE_SECRET_KEYS as an object or an array", () => {
  const fromObject = callerAuthConfigFromEnv((name) =>
    name === "SUPABASE_SECRET_KEYS"
      ? JSON.stringify({ default: SECRET_KEY, rotated: OTHER_SECRET_KEY })
      : undefined
  );
  assert.deepEqual(fromObject, { secretKeys: [SECRET_KEY, OTHER_SECRET_KEY] });
  const fromArray = callerAuthConfigFromEnv((name) =>
    name === "SUPABASE_SECRET_KEYS" ? JSON.stringify([SECRET_KEY]) : undefined
  );
  assert.deepEqual(fromArray, { secretKeys: [SECRET_KEY] });
});

Deno.test("config prefers SUPABASE_JWKS over the endpoint and keeps the legacy secret", () => {
  const env: Record<string, string> = {
    SUPABASE_JWKS: JSON.stringify(JWKS),
    SUPABASE_URL: "https://project.supabase.co",
    SUPABASE_JWT_SECRET: JWT_SECRET,
  };
  const config = callerAuthConfigFromEnv((name) => env[name]);
  assert.deepEqual(config.jwks, JWKS);
  assert.equal(config.jwksUrl, undefined);
  assert.equal(config.jwtSecret, JWT_SECRET);
});

function configError(env: Record<string, string>): Error {
  let thrown: unknown;
  assert.throws(
    () => callerAuthConfigFromEnv((name) => env[name]),
    (err) => {
      thrown = err;
      return true;
    },
    "expected a configuration error",
  );
  assert.ok(thrown instanceof Error);
  assert.ok(!(thrown instanceof Unauthorized), "misconfiguration is not a 401");
  return thrown;
}

Deno.test("malformed SUPABASE_SECRET_KEYS JSON is a config error that hides the value", () => {
  const value = `{"default":"${SECRET_KEY}"`;
  const err = configError({ SUPABASE_SECRET_KEYS: value });
  assert.match(err.message, /SUPABASE_SECRET_KEYS/);
  assert.ok(!err.message.includes(SECRET_KEY));
  assert.ok(!String(err.cause ?? "").includes(SECRET_KEY));
});

Deno.test("SUPABASE_SECRET_KEYS with no usable keys is a config error", () => {
  for (const value of ["{}", "[]", '{"default":""}', '{"default":42}', '"sb_secret_x"']) {
    const err = configError({ SUPABASE_SECRET_KEYS: value });
    assert.match(err.message, /SUPABASE_SECRET_KEYS/);
    assert.ok(!err.message.includes("sb_secret_x"));
  }
});

Deno.test("malformed SUPABASE_JWKS is a config error naming the variable", () => {
  for (const value of ["{not json", '{"keys":[]}', '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}']) {
    const err = configError({ SUPABASE_JWKS: value });
    assert.match(err.message, /SUPABASE_JWKS/);
    assert.ok(!err.message.includes("c2VjcmV0"));
  }
});

Deno.test("no secret keys and no JWT source is a config error, not a 401", () => {
  const err = configError({});
  assert.match(err.message, /not configured/);
  assert.throws(
    () => createCallerAuth({ secretKeys: [] }),
    (thrown) => thrown instanceof Error && !(thrown instanceof Unauthorized),
    "createCallerAuth throws",
  );
});

Deno.test("a secret-keys-only config rejects JWTs", async () => {
  const token = await serviceToken();
  await assertRejected(keysOnly, request(bearer(token)), /algorithm not accepted/, [token]);
});
