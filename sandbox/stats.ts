/**
 * Refresh counters. Every refresh attempt that reaches a token endpoint with a
 * token some account was ever issued counts (failed ones included), per
 * account and per refresh-token fingerprint; raw tokens are never kept here.
 */

export interface StatsBody {
  refresh_calls: number;
  /** Attempts whose refresh token no account was ever issued (not in refresh_calls). */
  unknown_token_refresh_calls: number;
  by_account: Record<string, { refresh_calls: number; by_refresh_token: Record<string, number> }>;
}

interface AccountCounters {
  calls: number;
  byToken: Map<string, number>;
}

export class RefreshStats {
  #total = 0;
  #unknown = 0;
  readonly #byAccount = new Map<string, AccountCounters>();

  /** Makes the account show up with zero calls. */
  register(accountKey: string): void {
    if (!this.#byAccount.has(accountKey)) {
      this.#byAccount.set(accountKey, { calls: 0, byToken: new Map() });
    }
  }

  record(accountKey: string | undefined, tokenFingerprint: string): void {
    if (accountKey === undefined) {
      this.#unknown += 1;
      return;
    }
    this.register(accountKey);
    const counters = this.#byAccount.get(accountKey)!;
    this.#total += 1;
    counters.calls += 1;
    counters.byToken.set(tokenFingerprint, (counters.byToken.get(tokenFingerprint) ?? 0) + 1);
  }

  reset(): void {
    this.#total = 0;
    this.#unknown = 0;
    for (const counters of this.#byAccount.values()) {
      counters.calls = 0;
      counters.byToken.clear();
    }
  }

  snapshot(): StatsBody {
    const byAccount: StatsBody["by_account"] = {};
    for (const [key, c] of this.#byAccount) {
      byAccount[key] = { refresh_calls: c.calls, by_refresh_token: Object.fromEntries(c.byToken) };
    }
    return {
      refresh_calls: this.#total,
      unknown_token_refresh_calls: this.#unknown,
      by_account: byAccount,
    };
  }
}
