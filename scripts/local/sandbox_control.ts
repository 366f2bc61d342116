// The provider sandboxes' control API (sandbox/server.ts, under /_sandbox), as
// tests and benchmarks drive it. Tokens are compared by fingerprint, the first
// 12 hex digits of their sha256, as the sandbox reports them, so no assertion
// ever prints a token.
import type { ProviderName } from "../../functions-shared/providers/types.ts";

export interface SandboxAccount {
  provider: ProviderName;
  external_id: string;
  credentials: Record<string, string>;
  config: Record<string, string>;
}

export interface SandboxStats {
  refresh_calls: number;
  unknown_token_refresh_calls: number;
  by_account: Record<string, { refresh_calls: number; by_refresh_token: Record<string, number> }>;
}

export interface AccountFingerprints {
  live_refresh_token_fingerprint: string | null;
  live_access_token_fingerprint: string | null;
  refresh_token_expires_at: string | null;
  access_token_expires_at: string | null;
  revoked: boolean;
}

export interface SandboxFault {
  provider: ProviderName;
  endpoint?: "token" | "api";
  kind:
    | "5xx"
    | "hang"
    | "429"
    | "malformed_json"
    | "missing_field"
    | "invalid_grant"
    | "unauthorized"
    | "5xx_after_acting"
    | "slow";
  count?: number;
  retry_after?: number;
  field?: string;
  /** For slow: how long each answer is held (default 2,000 ms). */
  delay_ms?: number;
}

export class SandboxControl {
  constructor(readonly url: string) {}

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}/_sandbox${path}`, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox ${method} ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  account(provider: ProviderName, kind?: "legacy" | "expiring"): Promise<SandboxAccount> {
    return this.call("POST", "/accounts", { provider, ...(kind ? { kind } : {}) });
  }

  /** A connection config that sends the provider's auth and API calls to this sandbox. */
  configFor(account: Pick<SandboxAccount, "provider" | "config">): Record<string, string> {
    const base = `${this.url}/${account.provider}`;
    return { ...account.config, auth_base_url: base, api_base_url: base };
  }

  inspect(provider: ProviderName, externalId: string): Promise<AccountFingerprints> {
    return this.call("GET", `/accounts/${provider}/${encodeURIComponent(externalId)}`);
  }

  revoke(provider: ProviderName, externalId: string): Promise<unknown> {
    return this.call("POST", `/accounts/${provider}/${encodeURIComponent(externalId)}/revoke`, {});
  }

  /** Queues a fault for the next matching request (the next `count` requests). */
  fault(fault: SandboxFault): Promise<unknown> {
    return this.call("POST", "/faults", fault);
  }

  stats(): Promise<SandboxStats> {
    return this.call("GET", "/stats");
  }

  async refreshCalls(provider: ProviderName, externalId: string): Promise<number> {
    return (await this.stats()).by_account[`${provider}/${externalId}`]?.refresh_calls ?? 0;
  }
}

/** The sandbox's fingerprint of a token: the first 12 hex digits of its sha256. */
export async function fingerprint(token: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
  );
  return Array.from(digest.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}
