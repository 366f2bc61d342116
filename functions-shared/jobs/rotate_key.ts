// Re-encrypts every stored credential with the vault's active key, in
// batches. Safe to run while functions are serving (old keys still decrypt,
// and each batch is its own short transaction) and resumable: a rerun picks up
// whatever is not on the active key yet. Put the new key first in
// TOKEN_ENCRYPTION_KEYS, run this, then drop the old key.
import { countNotOnKey, reencryptBatch } from "../db/credentials.ts";
import type { Sql } from "../db/client.ts";
import type { TokenVault } from "../vault.ts";

export interface RotateKeyResult {
  active_key_id: string;
  rotated: number;
  remaining: number;
}

export async function runRotateKey(
  deps: { db: Sql; vault: TokenVault },
  opts: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<RotateKeyResult> {
  const batchSize = opts.batchSize ?? 500;
  const total = await countNotOnKey(deps.db, deps.vault.activeKeyId);
  let rotated = 0;
  while (true) {
    const n = await reencryptBatch(deps.db, deps.vault, batchSize);
    rotated += n;
    opts.onProgress?.(rotated, total);
    if (n === 0) break;
  }
  return {
    active_key_id: deps.vault.activeKeyId,
    rotated,
    remaining: await countNotOnKey(deps.db, deps.vault.activeKeyId),
  };
}
