import assert from "node:assert/strict";
import {
  generateKeyRingEntry,
  parseKeyRing,
  TokenVault,
  VaultConfigError,
  type VaultConfigErrorCode,
  VaultDecryptError,
  type VaultDecryptErrorCode,
} from "../functions-shared/vault.ts";

// Fixed test keys (32 bytes each), standard base64.
const KEY_A = btoa(String.fromCharCode(...Array.from({ length: 32 }, (_, i) => i)));
const KEY_B = btoa(String.fromCharCode(...Array.from({ length: 32 }, (_, i) => 255 - i)));
const RING = `ka:${KEY_A},kb:${KEY_B}`;
const AAD = "6f1c2a7e-3b7d-4e0a-9d7c-1f2e3d4c5b6a:access_token";
const TOKEN = "shpat_0123456789abcdef-ünïcødé-🔑";
const FORMAT = /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/;

function bytesOf(length: number, fill = 7): string {
  return btoa(String.fromCharCode(...new Uint8Array(length).fill(fill)));
}

function b64urlDecode(text: string): Uint8Array {
  return Uint8Array.from(
    atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4)),
    (char) => char.charCodeAt(0),
  );
}

function b64urlEncode(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** Flips one bit of byte `index` (negative counts from the end) in dot-part `part`. */
function tamper(ciphertext: string, part: 2 | 3, index: number): string {
  const parts = ciphertext.split(".");
  const bytes = b64urlDecode(parts[part]!);
  const at = index < 0 ? bytes.length + index : index;
  bytes[at] = bytes[at]! ^ 0x01;
  parts[part] = b64urlEncode(bytes);
  return parts.join(".");
}

async function assertConfigError(spec: string, code: VaultConfigErrorCode, message: RegExp) {
  await assert.rejects(TokenVault.fromKeyRing(spec), (error) => {
    assert.ok(error instanceof VaultConfigError, `expected VaultConfigError, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

async function assertDecryptError(
  vault: TokenVault,
  ciphertext: string,
  aad: string,
  code: VaultDecryptErrorCode,
  message: RegExp,
) {
  await assert.rejects(vault.decrypt(ciphertext, aad), (error) => {
    assert.ok(error instanceof VaultDecryptError, `expected VaultDecryptError, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

/** Runs a CommonJS script in Node; secrets go in through `env`, only results come out. */
async function runNode(script: string, env: Record<string, string>): Promise<string> {
  const output = await new Deno.Command("node", {
    args: ["-e", script],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `node failed: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

Deno.test("a value round-trips through encrypt and decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  assert.equal(await vault.decrypt(await vault.encrypt(TOKEN, AAD), AAD), TOKEN);
  assert.equal(await vault.decrypt(await vault.encrypt("", AAD), AAD), "");
});

Deno.test("ciphertext is v1.<keyId>.<12-byte iv>.<data with 16-byte tag> in base64url", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  assert.match(ciphertext, FORMAT);
  const [version, keyId, iv, sealed] = ciphertext.split(".");
  assert.equal(version, "v1");
  assert.equal(keyId, "ka");
  assert.equal(b64urlDecode(iv!).length, 12);
  assert.equal(b64urlDecode(sealed!).length, new TextEncoder().encode(TOKEN).length + 16);
});

Deno.test("the same plaintext encrypts to a different ciphertext with a fresh IV each time", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const values = await Promise.all(Array.from({ length: 20 }, () => vault.encrypt(TOKEN, AAD)));
  assert.equal(new Set(values).size, 20);
  assert.equal(new Set(values.map((value) => value.split(".")[2])).size, 20);
});

Deno.test("a multi-key ring encrypts with the first key and decrypts values of the others", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  assert.equal(vault.activeKeyId, "ka");
  const old = await (await TokenVault.fromKeyRing(`kb:${KEY_B}`)).encrypt(TOKEN, AAD);
  assert.equal(TokenVault.keyIdOf(old), "kb");
  assert.equal(await vault.decrypt(old, AAD), TOKEN);
  const fresh = await vault.encrypt(TOKEN, AAD);
  assert.equal(TokenVault.keyIdOf(fresh), "ka");
});

Deno.test("rotation: values under a non-active key re-encrypt to the active key", async () => {
  const before = await TokenVault.fromKeyRing(`kb:${KEY_B}`);
  const after = await TokenVault.fromKeyRing(RING);
  const stored = await before.encrypt(TOKEN, AAD);
  assert.notEqual(TokenVault.keyIdOf(stored), after.activeKeyId);
  const rotated = await after.encrypt(await after.decrypt(stored, AAD), AAD);
  assert.equal(TokenVault.keyIdOf(rotated), "ka");
  assert.equal(await (await TokenVault.fromKeyRing(`ka:${KEY_A}`)).decrypt(rotated, AAD), TOKEN);
});

Deno.test("a bare base64 key is a one-key ring with id k0", async () => {
  const vault = await TokenVault.fromKeyRing(`  ${KEY_A}  `);
  assert.equal(vault.activeKeyId, "k0");
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  assert.equal(TokenVault.keyIdOf(ciphertext), "k0");
  assert.equal(await (await TokenVault.fromKeyRing(`k0:${KEY_A}`)).decrypt(ciphertext, AAD), TOKEN);
});

Deno.test("key ring entries are trimmed and keys may be base64url without padding", () => {
  const urlKey = KEY_B.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  assert.notEqual(urlKey, KEY_B);
  const ring = parseKeyRing(` ka : ${KEY_A} ,\n kb:${urlKey} `);
  assert.deepEqual(ring.map((entry) => entry.id), ["ka", "kb"]);
  assert.deepEqual(ring[1]!.key, parseKeyRing(`kb:${KEY_B}`)[0]!.key);
});

Deno.test("generateKeyRingEntry makes a usable id:base64key entry", async () => {
  const entry = generateKeyRingEntry("local-1");
  assert.match(entry, /^local-1:[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(entry, generateKeyRingEntry("local-1"));
  const vault = await TokenVault.fromKeyRing(entry);
  assert.equal(vault.activeKeyId, "local-1");
  assert.equal(await vault.decrypt(await vault.encrypt(TOKEN, AAD), AAD), TOKEN);
  assert.throws(() => generateKeyRingEntry("bad id"), VaultConfigError);
});

Deno.test("a 16-byte key is rejected as the wrong length", async () => {
  await assertConfigError(`ka:${bytesOf(16)}`, "invalid_key_length", /"ka".* 16 bytes.*exactly 32/);
});

Deno.test("a 33-byte key is rejected as the wrong length", async () => {
  await assertConfigError(`ka:${bytesOf(33)}`, "invalid_key_length", /"ka".* 33 bytes.*exactly 32/);
});

Deno.test("duplicate key ids are rejected", async () => {
  await assertConfigError(`ka:${KEY_A},ka:${KEY_B}`, "duplicate_key_id", /"ka" appears twice/);
});

Deno.test("a key that is not base64 is rejected", async () => {
  await assertConfigError(`ka:${KEY_A},kb:not*base64!`, "invalid_base64", /entry 2 .*"kb".*base64/);
  await assertConfigError(`ka:${KEY_A.slice(0, -1)}==`, "invalid_base64", /not valid base64/);
});

Deno.test("an empty key ring is rejected", async () => {
  await assertConfigError("", "empty_key_ring", /key ring is empty/);
  await assertConfigError("  \n ", "empty_key_ring", /TOKEN_ENCRYPTION_KEYS/);
});

Deno.test("malformed key ring entries are rejected", async () => {
  await assertConfigError(`ka:${KEY_A},${KEY_B}`, "malformed_entry", /entry 2 is malformed/);
  await assertConfigError(`ka:${KEY_A},`, "malformed_entry", /entry 2 .*stray commas/);
  await assertConfigError(`ka:x:${KEY_A}`, "malformed_entry", /entry 1 is malformed/);
});

Deno.test("key ids outside [A-Za-z0-9_-] are rejected", async () => {
  await assertConfigError(`k.a:${KEY_A}`, "invalid_key_id", /invalid key id/);
  await assertConfigError(`:${KEY_A}`, "invalid_key_id", /invalid key id/);
});

Deno.test("config errors never contain key material", async () => {
  const short = bytesOf(16, 42);
  await assert.rejects(TokenVault.fromKeyRing(`ka:${short}`), (error) => {
    assert.ok(error instanceof VaultConfigError);
    assert.ok(!error.message.includes(short), error.message);
    return true;
  });
  await assert.rejects(TokenVault.fromKeyRing(`ka:${KEY_A},${KEY_B}`), (error) => {
    assert.ok(error instanceof VaultConfigError);
    assert.ok(!error.message.includes(KEY_A) && !error.message.includes(KEY_B), error.message);
    return true;
  });
});

Deno.test("a value written with a key missing from the ring names that key id", async () => {
  const ciphertext = await (await TokenVault.fromKeyRing(`retired:${KEY_B}`)).encrypt(TOKEN, AAD);
  const vault = await TokenVault.fromKeyRing(`ka:${KEY_A}`);
  await assertDecryptError(
    vault,
    ciphertext,
    AAD,
    "unknown_key_id",
    /key "retired", which is not in the key ring/,
  );
});

Deno.test("a tampered IV does not decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  await assertDecryptError(
    vault,
    tamper(ciphertext, 2, 0),
    AAD,
    "authentication_failed",
    /^authentication failed: the value was tampered with or belongs to another connection\/field$/,
  );
});

Deno.test("a tampered ciphertext byte does not decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  await assertDecryptError(vault, tamper(ciphertext, 3, 0), AAD, "authentication_failed", /^auth/);
});

Deno.test("a tampered tag byte does not decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  await assertDecryptError(vault, tamper(ciphertext, 3, -1), AAD, "authentication_failed", /^auth/);
});

Deno.test("a ciphertext copied to another field does not decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  const otherField = AAD.replace(":access_token", ":refresh_token");
  await assertDecryptError(vault, ciphertext, otherField, "authentication_failed", /^auth/);
});

Deno.test("a ciphertext copied to another connection does not decrypt", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  const otherRow = "00000000-0000-4000-8000-000000000000:access_token";
  await assertDecryptError(vault, ciphertext, otherRow, "authentication_failed", /^auth/);
});

Deno.test("authentication failures keep the WebCrypto error as cause and hide the plaintext", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  await assert.rejects(vault.decrypt(ciphertext, "x:y"), (error) => {
    assert.ok(error instanceof VaultDecryptError);
    assert.ok(error.cause instanceof Error);
    assert.ok(!error.message.includes(TOKEN));
    return true;
  });
});

Deno.test("a wrong version prefix is malformed", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  const v2 = ciphertext.replace(/^v1\./, "v2.");
  await assertDecryptError(vault, v2, AAD, "malformed_ciphertext", /unsupported version.*"v1"/);
  assert.throws(() => TokenVault.keyIdOf(v2), VaultDecryptError);
});

Deno.test("a value without 4 dot-separated parts is malformed, not returned as plaintext", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  const threeParts = ciphertext.split(".").slice(0, 3).join(".");
  await assertDecryptError(vault, TOKEN, AAD, "malformed_ciphertext", /expected 4 .*got 1/);
  await assertDecryptError(vault, threeParts, AAD, "malformed_ciphertext", /got 3/);
  await assertDecryptError(vault, `${ciphertext}.x`, AAD, "malformed_ciphertext", /got 5/);
  await assertDecryptError(vault, `${ciphertext}=`, AAD, "malformed_ciphertext", /base64url/);
  assert.throws(
    () => TokenVault.keyIdOf(TOKEN),
    (error) => error instanceof VaultDecryptError && error.code === "malformed_ciphertext",
  );
});

Deno.test("an IV that is not 12 bytes is rejected as a bad IV length", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const parts = (await vault.encrypt(TOKEN, AAD)).split(".");
  parts[2] = b64urlEncode(new Uint8Array(16));
  await assertDecryptError(vault, parts.join("."), AAD, "bad_iv_length", /16 bytes.*12-byte/);
});

Deno.test("Node's aes-256-gcm decipher decrypts a vault ciphertext", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  const ciphertext = await vault.encrypt(TOKEN, AAD);
  const stdout = await runNode(
    `
    const crypto = require("node:crypto");
    const [version, keyId, iv, sealed] = process.env.VAULT_CIPHERTEXT.split(".");
    const data = Buffer.from(sealed, "base64url");
    const decipher = crypto.createDecipheriv(
      "aes-256-gcm",
      Buffer.from(process.env.VAULT_KEY, "base64"),
      Buffer.from(iv, "base64url"),
    );
    decipher.setAAD(Buffer.from(process.env.VAULT_AAD, "utf8"));
    decipher.setAuthTag(data.subarray(data.length - 16));
    const plain = Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
    process.stdout.write(JSON.stringify({ version, keyId, plaintext: plain.toString("utf8") }));
    `,
    { VAULT_KEY: KEY_A, VAULT_AAD: AAD, VAULT_CIPHERTEXT: ciphertext },
  );
  assert.deepEqual(JSON.parse(stdout), { version: "v1", keyId: "ka", plaintext: TOKEN });
});

Deno.test("the vault decrypts a value Node's aes-256-gcm cipher encrypted", async () => {
  const ciphertext = await runNode(
    `
    const crypto = require("node:crypto");
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv("aes-256-gcm", Buffer.from(process.env.VAULT_KEY, "base64"), iv);
    cipher.setAAD(Buffer.from(process.env.VAULT_AAD, "utf8"));
    const data = Buffer.concat([cipher.update(process.env.VAULT_PLAINTEXT, "utf8"), cipher.final(), cipher.getAuthTag()]);
    process.stdout.write(["v1", "kb", iv.toString("base64url"), data.toString("base64url")].join("."));
    `,
    { VAULT_KEY: KEY_B, VAULT_AAD: AAD, VAULT_PLAINTEXT: TOKEN },
  );
  assert.match(ciphertext, FORMAT);
  const vault = await TokenVault.fromKeyRing(RING);
  assert.equal(await vault.decrypt(ciphertext, AAD), TOKEN);
  await assertDecryptError(vault, ciphertext, `${AAD}x`, "authentication_failed", /^auth/);
});

Deno.test("an empty aad is refused, since it would drop the connection/field binding", async () => {
  const vault = await TokenVault.fromKeyRing(RING);
  await assert.rejects(vault.encrypt(TOKEN, ""), TypeError);
  await assert.rejects(vault.decrypt(await vault.encrypt(TOKEN, AAD), ""), TypeError);
});
