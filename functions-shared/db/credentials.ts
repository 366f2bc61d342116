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
  const sealed = await sql<SealedCredentials>`
    select field, ciphertext from tether.credentials
     where connection_id = ${connectionId} order by field`;
  return await openCredentials(vault, connectionId, sealed);
}

/**
 * Several connections' credentials as stored, in one query, nothing decrypted (`openCredentials`
 * does that, one connection at a time, so a value no key decrypts fails its connection only).
 * A connection without credentials maps to [].
 */
export async function readSealedCredentials(
  sql: Sql,
  connectionIds: string[],
): Promise<Map<string, SealedCredentials>> {
  const byConnection = new Map(connectionIds.map((id) => [id, [] as SealedCredentials]));
  if (connectionIds.length === 0) return byConnection;
  // Ids as text, not a JS array: see claimDueForRefresh (postgres.js array binding).
  const rows = await sql<{ connection_id: string; field: string; ciphertext: string }[]>`
    select connection_id, field, ciphertext from tether.credentials
     where connection_id = any(string_to_array(${connectionIds.join(",")}, ',')::uuid[])
     order by connection_id, field`;
  for (const { connection_id, field, ciphertext } of rows) {
    byConnection.get(connection_id)?.push({ field, ciphertext });
  }
  return byConnection;
}

/** Decrypts one connection's stored credentials (in field order, as read). */
export async function openCredentials(
  vault: TokenVault,
  connectionId: string,
  sealed: SealedCredentials,
): Promise<StoredCredentials> {
  const values: Credentials = {};
  for (const { field, ciphertext } of sealed) {
    values[field] = await vault.decrypt(ciphertext, aad(connectionId, field));
  }
  return { values, version: versionOf(sealed) };
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
