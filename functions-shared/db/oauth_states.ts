// tether.oauth_states: the nonces of OAuth `state`s already spent, so each callback works once.
import type { Sql } from "./client.ts";

/** Spends a state's nonce; false when it was spent before (a replayed callback). */
export async function spendNonce(
  db: Sql,
  s: { nonce: string; provider: string; expiresAt: Date },
): Promise<boolean> {
  const [spent] = await db`
    insert into tether.oauth_states (nonce, provider, expires_at)
    values (${s.nonce}, ${s.provider}, ${s.expiresAt})
    on conflict (nonce) do nothing
    returning nonce`;
  return spent !== undefined;
}
