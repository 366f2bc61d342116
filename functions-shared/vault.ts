/**
 * Token vault: AES-256-GCM encryption of stored secrets (OAuth tokens and the like).
 *
 * Key ring (`TOKEN_ENCRYPTION_KEYS`): `id1:base64key,id2:base64key`. The first key encrypts,
 * every key decrypts, so a key is rotated by putting the new one first, re-encrypting stored
 * values whose key id is not `activeKeyId`, then dropping the old key. A bare base64 key (the
 * old `TOKEN_ENCRYPTION_KEY`) is a one-key ring with id `k0`. Keys are 32 bytes, standard or
 * url-safe base64. A missing or malformed key ring is a startup error, never a plaintext fallback.
 *
 * Ciphertext text: `v1.<keyId>.<base64url iv>.<base64url ciphertext-with-16-byte-tag>`, with a
 * fresh random 12-byte IV per value (standard AES-GCM: Node's `aes-256-gcm` decrypts it).
 *
 * Callers pass `aad` = `<connection_id>:<field>`, used as GCM additional data. The value is then
 * bound to the row and column it was written for: a ciphertext copied to another connection or
 * field (say, an access token pasted over a refresh token) fails authentication instead of
 * decrypting to a credential that belongs elsewhere.
 */

const VERSION = "v1";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BARE_KEY_ID = "k0";
const KEY_ID = /^[A-Za-z0-9_-]+$/;
const BASE64URL_UNPADDED = /^[A-Za-z0-9_-]+$/;

export type VaultConfigErrorCode =
  | "empty_key_ring"
  | "malformed_entry"
  | "invalid_key_id"
  | "duplicate_key_id"
  | "invalid_base64"
  | "invalid_key_length";

/** An error that says which of a closed set of failures it is. */
class CodedError<C extends string> extends Error {
  constructor(readonly code: C, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The key ring is unusable: a startup error, fix the configuration. */
export class VaultConfigError extends CodedError<VaultConfigErrorCode> {
  override readonly name = "VaultConfigError";
}

export type VaultDecryptErrorCode =
  | "malformed_ciphertext"
  | "unknown_key_id"
  | "bad_iv_length"
  | "authentication_failed";

/** A stored value cannot be decrypted. There is never a plaintext fallback. */
export class VaultDecryptError extends CodedError<VaultDecryptErrorCode> {
  override readonly name = "VaultDecryptError";
}

export interface KeyRingEntry {
  id: string;
  key: Uint8Array<ArrayBuffer>;
}

/** Parses a key ring spec; messages name entries by position and id, never by key material. */
export function parseKeyRing(spec: string): KeyRingEntry[] {
  if (spec.trim() === "") {
    throw new VaultConfigError(
      "empty_key_ring",
      "key ring is empty: set TOKEN_ENCRYPTION_KEYS to id:base64key[,id:base64key...]",
    );
  }
  const entries = spec.split(",").map((entry) => entry.trim());
  const ring: KeyRingEntry[] = [];
  entries.forEach((entry, index) => {
    const where = `key ring entry ${index + 1}`;
    const fields = entry.split(":").map((field) => field.trim());
    let id: string;
    let encoded: string;
    if (fields.length === 1 && entries.length === 1) {
      [id, encoded] = [BARE_KEY_ID, entry];
    } else if (fields.length === 2) {
      [id, encoded] = fields as [string, string];
    } else {
      throw new VaultConfigError(
        "malformed_entry",
        `${where} is malformed: expected id:base64key` +
          (entry === "" ? " (empty entry; check for stray commas)" : ""),
      );
    }
    if (!KEY_ID.test(id)) {
      throw new VaultConfigError(
        "invalid_key_id",
        `${where} has an invalid key id: ids are 1+ characters of A-Z a-z 0-9 _ -`,
      );
    }
    if (ring.some((other) => other.id === id)) {
      throw new VaultConfigError("duplicate_key_id", `${where}: key id "${id}" appears twice`);
    }
    const key = fromBase64(encoded);
    if (key === null) {
      throw new VaultConfigError("invalid_base64", `${where} (key "${id}") is not valid base64`);
    }
    if (key.length !== KEY_BYTES) {
      throw new VaultConfigError(
        "invalid_key_length",
        `${where} (key "${id}") is ${key.length} bytes after base64 decoding; ` +
          `AES-256 needs exactly ${KEY_BYTES}`,
      );
    }
    ring.push({ id, key });
  });
  return ring;
}

/** A new `id:base64key` key ring entry with a random 32-byte key. */
export function generateKeyRingEntry(id: string): string {
  if (!KEY_ID.test(id)) {
    throw new VaultConfigError(
      "invalid_key_id",
      "invalid key id: ids are 1+ characters of A-Z a-z 0-9 _ -",
    );
  }
  return `${id}:${toBase64(crypto.getRandomValues(new Uint8Array(KEY_BYTES)))}`;
}

export class TokenVault {
  /** The id of the key that encrypts; values under any other id are due for re-encryption. */
  readonly activeKeyId: string;
  readonly #keys: ReadonlyMap<string, CryptoKey>;
  /**
   * Each key's id and fingerprint, the active key first: the first 16 hex digits of
   * SHA-256("tether-key-fingerprint:" + key). It tells two rings' keys apart without revealing
   * them, so the CLI can check that the functions hold a key before rotating to it.
   */
  readonly fingerprints: readonly { id: string; fingerprint: string }[];

  private constructor(
    activeKeyId: string,
    keys: ReadonlyMap<string, CryptoKey>,
    fingerprints: readonly { id: string; fingerprint: string }[],
  ) {
    this.activeKeyId = activeKeyId;
    this.#keys = keys;
    this.fingerprints = fingerprints;
  }

  /** Parses the key ring and imports every key once, non-extractable. */
  static async fromKeyRing(spec: string): Promise<TokenVault> {
    const ring = parseKeyRing(spec);
    const keys = new Map<string, CryptoKey>();
    const fingerprints: { id: string; fingerprint: string }[] = [];
    for (const { id, key } of ring) {
      keys.set(
        id,
        await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]),
      );
      fingerprints.push({ id, fingerprint: await fingerprintOf(key) });
      key.fill(0);
    }
    return new TokenVault(ring[0]!.id, keys, fingerprints);
  }

  /** The key id a ciphertext was written with (for rotation); throws if it is not a v1 value. */
  static keyIdOf(ciphertext: string): string {
    return parseEnvelope(ciphertext).keyId;
  }

  async encrypt(plaintext: string, aad: string): Promise<string> {
    requireAad(aad);
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt(
      gcmParams(iv, aad),
      this.#keys.get(this.activeKeyId)!,
      new TextEncoder().encode(plaintext),
    );
    return [VERSION, this.activeKeyId, toBase64Url(iv), toBase64Url(new Uint8Array(sealed))]
      .join(".");
  }

  async decrypt(ciphertext: string, aad: string): Promise<string> {
    requireAad(aad);
    const { keyId, iv, sealed } = parseEnvelope(ciphertext);
    if (iv.length !== IV_BYTES) {
      throw new VaultDecryptError(
        "bad_iv_length",
        `IV is ${iv.length} bytes; ${VERSION} values use ${IV_BYTES}-byte IVs`,
      );
    }
    if (sealed.length < TAG_BYTES) {
      throw new VaultDecryptError(
        "malformed_ciphertext",
        `ciphertext is ${sealed.length} bytes, shorter than the ${TAG_BYTES}-byte GCM tag`,
      );
    }
    const key = this.#keys.get(keyId);
    if (key === undefined) {
      throw new VaultDecryptError(
        "unknown_key_id",
        `value was encrypted with key "${keyId}", which is not in the key ring ` +
          `(has: ${[...this.#keys.keys()].join(", ")}); add that key to TOKEN_ENCRYPTION_KEYS`,
      );
    }
    let plain: ArrayBuffer;
    try {
      plain = await crypto.subtle.decrypt(gcmParams(iv, aad), key, sealed);
    } catch (cause) {
      throw new VaultDecryptError(
        "authentication_failed",
        "authentication failed: the value was tampered with or belongs to another connection/field",
        { cause },
      );
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(plain);
    } catch (cause) {
      throw new VaultDecryptError(
        "malformed_ciphertext",
        "decrypted value is not valid UTF-8",
        { cause },
      );
    }
  }
}

interface Envelope {
  keyId: string;
  iv: Uint8Array<ArrayBuffer>;
  sealed: Uint8Array<ArrayBuffer>;
}

/** Splits `v1.<keyId>.<iv>.<sealed>`; never echoes parts that could be a stray plaintext. */
function parseEnvelope(ciphertext: string): Envelope {
  const parts = ciphertext.split(".");
  if (parts.length !== 4) {
    throw new VaultDecryptError(
      "malformed_ciphertext",
      `malformed ciphertext: expected 4 dot-separated parts (${VERSION}.<keyId>.<iv>.<data>), ` +
        `got ${parts.length}`,
    );
  }
  const [version, keyId, iv, sealed] = parts as [string, string, string, string];
  if (version !== VERSION) {
    throw new VaultDecryptError(
      "malformed_ciphertext",
      `malformed ciphertext: unsupported version, expected "${VERSION}"`,
    );
  }
  if (!KEY_ID.test(keyId)) {
    throw new VaultDecryptError("malformed_ciphertext", "malformed ciphertext: invalid key id");
  }
  const ivBytes = BASE64URL_UNPADDED.test(iv) ? fromBase64(iv) : null;
  const sealedBytes = BASE64URL_UNPADDED.test(sealed) ? fromBase64(sealed) : null;
  if (ivBytes === null || sealedBytes === null) {
    throw new VaultDecryptError(
      "malformed_ciphertext",
      "malformed ciphertext: IV and data must be unpadded base64url",
    );
  }
  return { keyId, iv: ivBytes, sealed: sealedBytes };
}

/** An empty `aad` would drop the row/field binding: a caller bug, so it throws. */
function requireAad(aad: string): void {
  if (aad === "") throw new TypeError('vault: aad must be <connection_id>:<field>, got ""');
}

function gcmParams(iv: Uint8Array<ArrayBuffer>, aad: string): AesGcmParams {
  return { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(aad), tagLength: 128 };
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes standard or url-safe base64, padded or not; null if `text` is not base64. */
function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  const match = /^([A-Za-z0-9+/_-]*)(={0,2})$/.exec(text);
  if (match === null) return null;
  const body = match[1]!.replace(/-/g, "+").replace(/_/g, "/");
  const padding = match[2]!;
  if (body.length % 4 === 1 || (padding !== "" && (body.length + padding.length) % 4 !== 0)) {
    return null;
  }
  let binary: string;
  try {
    binary = atob(body + "=".repeat((4 - (body.length % 4)) % 4));
  } catch {
    return null;
  }
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

async function fingerprintOf(key: Uint8Array<ArrayBuffer>): Promise<string> {
  const label = new TextEncoder().encode("tether-key-fingerprint:");
  const input = new Uint8Array(label.length + key.length);
  input.set(label);
  input.set(key, label.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  input.fill(0);
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
