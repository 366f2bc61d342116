// tether.credentials: one encrypted value per connection and field, bound to
// both by the vault's additional data, so a value copied elsewhere never
// decrypts. Plaintext exists only in memory.
import type { TokenVault } from "../vault.ts";
import type { Sql, Tx } from "./client.ts";

export type Credentials = Record<string, string>;

export interface StoredCredentials {
  values: Credentials;
  /** Changes whenever any field is rewritten: detects a reconnect during a refresh. */
  version: string;
}

const aad = (connectionId: string, field: string) => `${connectionId}:${field}`;

export async function readCredentials(
  sql: Sql | Tx,
  vault: TokenVault,
  connectionId: string,
): Promise<StoredCredentials> {
  const rows = await sql<{ field: string; ciphertext: string }[]>`
    select field, ciphertext from tether.credentials
     where connection_id = ${connectionId} order by field`;
  const values: Credentials = {};
  for (const row of rows) {
    values[row.field] = await vault.decrypt(row.ciphertext, aad(connectionId, row.field));
  }
  return { values, version: versionOf(rows) };
}

/**
 * The credentials' version alone (`StoredCredentials.version`), nothing decrypted: what a refresh
 * compares, under the connection's lock, with the version it refreshed.
 */
export async function credentialsVersion(sql: Sql | Tx, connectionId: string): Promise<string> {
  return versionOf(
    await sql<{ ciphertext: string }[]>`
      select ciphertext from tether.credentials
       where connection_id = ${connectionId} order by field`,
  );
}

/** Every value gets a fresh IV, so any rewritten field changes its ciphertext's tail. */
function versionOf(rows: readonly { ciphertext: string }[]): string {
  return rows.map((r) => r.ciphertext.slice(-16)).join(",");
}

/** Credentials encrypted for one connection, ready to be written (`writeSealedCredentials`). */
export type SealedCredentials = { field: string; ciphertext: string }[];

export async function sealCredentials(
  vault: TokenVault,
  connectionId: string,
  values: Credentials,
): Promise<SealedCredentials> {
  return await Promise.all(
    Object.entries(values).map(async ([field, value]) => ({
      field,
      ciphertext: await vault.encrypt(value, aad(connectionId, field)),
    })),
  );
}

/** Encrypts and stores the given fields; other fields are kept unless `replace`. */
export async function writeCredentials(
  tx: Tx,
  vault: TokenVault,
  connectionId: string,
  values: Credentials,
  opts: { replace?: boolean } = {},
): Promise<void> {
  await writeSealedCredentials(
    tx,
    connectionId,
    await sealCredentials(vault, connectionId, values),
    opts,
  );
}

/** Stores encrypted fields in one statement; other fields are kept unless `replace`. */
export async function writeSealedCredentials(
  tx: Tx,
  connectionId: string,
  sealed: SealedCredentials,
  opts: { replace?: boolean } = {},
): Promise<void> {
  if (opts.replace) {
    // Field names as text, not a JS array: see claimDueForRefresh (postgres.js array binding).
    await tx`delete from tether.credentials
              where connection_id = ${connectionId}
                and field <> all(string_to_array(${sealed.map((s) => s.field).join(",")}, ','))`;
  }
  if (sealed.length === 0) return;
  await tx`
    insert into tether.credentials (connection_id, field, ciphertext)
    select ${connectionId}, s.field, s.ciphertext
      from jsonb_to_recordset(${tx.json(sealed as never)}) as s(field text, ciphertext text)
    on conflict (connection_id, field) do update
       set ciphertext = excluded.ciphertext, updated_at = now()`;
}

/**
 * Re-encrypts up to `limit` values whose key is not the vault's active key.
 * Each value is rewritten only if unchanged since it was read, so a refresh
 * writing at the same moment always wins. Returns how many were rotated.
 */
export async function reencryptBatch(sql: Sql, vault: TokenVault, limit: number): Promise<number> {
  return await sql.begin(async (tx) => {
    const rows = await tx<{ connection_id: string; field: string; ciphertext: string }[]>`
      select connection_id, field, ciphertext from tether.credentials
       where split_part(ciphertext, '.', 2) <> ${vault.activeKeyId}
       order by connection_id, field
       limit ${limit}
       for update skip locked`;
    for (const row of rows) {
      const plain = await vault.decrypt(row.ciphertext, aad(row.connection_id, row.field));
      const fresh = await vault.encrypt(plain, aad(row.connection_id, row.field));
      await tx`update tether.credentials set ciphertext = ${fresh}, updated_at = now()
                where connection_id = ${row.connection_id} and field = ${row.field}`;
    }
    return rows.length;
  });
}

export async function countNotOnKey(sql: Sql, keyId: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from tether.credentials
     where split_part(ciphertext, '.', 2) <> ${keyId}`;
  return row!.n;
}
