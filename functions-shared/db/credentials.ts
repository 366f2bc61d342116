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
  const rows = await sql<{ field: string; ciphertext: string; updated_at: Date }[]>`
    select field, ciphertext, updated_at from tether.credentials
     where connection_id = ${connectionId} order by field`;
  const values: Credentials = {};
  for (const row of rows) {
    values[row.field] = await vault.decrypt(row.ciphertext, aad(connectionId, row.field));
  }
  return { values, version: rows.map((r) => r.ciphertext.slice(-16)).join(",") };
}

/** Encrypts and stores the given fields; other fields are kept unless `replace`. */
export async function writeCredentials(
  tx: Tx,
  vault: TokenVault,
  connectionId: string,
  values: Credentials,
  opts: { replace?: boolean } = {},
): Promise<void> {
  if (opts.replace) {
    // Field names as text, not a JS array: see claimDueForRefresh (postgres.js array binding).
    await tx`delete from tether.credentials
              where connection_id = ${connectionId}
                and field <> all(string_to_array(${Object.keys(values).join(",")}, ','))`;
  }
  for (const [field, value] of Object.entries(values)) {
    const ciphertext = await vault.encrypt(value, aad(connectionId, field));
    await tx`
      insert into tether.credentials (connection_id, field, ciphertext)
      values (${connectionId}, ${field}, ${ciphertext})
      on conflict (connection_id, field) do update
         set ciphertext = excluded.ciphertext, updated_at = now()`;
  }
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
