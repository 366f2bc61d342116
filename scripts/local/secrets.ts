// Local secrets, generated once per checkout into .tether/secrets.json (mode
// 0600, gitignored) and reused, so stored ciphertexts and issued keys stay
// valid across restarts. Nothing here is ever used outside the local stack.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { generateKeyRingEntry } from "../../functions-shared/vault.ts";
import { paths } from "./util.ts";

export interface LocalSecrets {
  /** TOKEN_ENCRYPTION_KEYS: the token vault's key ring. */
  tokenEncryptionKeys: string;
  /** The secret API key (SUPABASE_SECRET_KEYS.default, SERVICE_KEY). */
  secretKey: string;
  /**
   * TETHER_INVOKE_KEY and Vault's tether_invoke_key: what the SQL API's calls through pg_net carry,
   * accepted by the job functions only. Added to a secrets file written before it existed.
   */
  invokeKey: string;
  /** Legacy HS256 JWT secret (SUPABASE_JWT_SECRET). */
  jwtSecret: string;
  /** ES256 signing key of the local "Auth" and its public JWKS (SUPABASE_JWKS). */
  jwtPrivateJwk: JWK;
  jwks: { keys: JWK[] };
  /** Root key of the Vault stand-in, kept in the server configuration. */
  vaultKey: string;
  dbPassword: string;
}

function randomToken(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...raw)).replace(
    /[+/=]/g,
    (c) => c === "+" ? "-" : c === "/" ? "_" : "",
  );
}

export async function loadOrCreateSecrets(): Promise<LocalSecrets> {
  if (existsSync(paths.secrets)) {
    const saved = JSON.parse(await readFile(paths.secrets, "utf8")) as LocalSecrets;
    if (saved.invokeKey) return saved;
    const secrets = { ...saved, invokeKey: randomToken(32) };
    await writeFile(paths.secrets, JSON.stringify(secrets, null, 2), { mode: 0o600 });
    return secrets;
  }
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = `local-${randomToken(6)}`;
  const jwtPrivateJwk = { ...(await exportJWK(privateKey)), kid, alg: "ES256", use: "sig" };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const secrets: LocalSecrets = {
    tokenEncryptionKeys: generateKeyRingEntry("k1"),
    secretKey: `sb_secret_${randomToken(24)}`,
    invokeKey: randomToken(32),
    jwtSecret: randomToken(32),
    jwtPrivateJwk,
    jwks: { keys: [publicJwk] },
    vaultKey: randomToken(32),
    dbPassword: "postgres",
  };
  await writeFile(paths.secrets, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
