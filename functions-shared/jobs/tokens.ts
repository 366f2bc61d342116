// One token refresh, done right (docs/architecture.md rules 1-3, 8), and
// getAccessToken for every job that calls a provider. The caller has claimed
// the connection (a lease); the credentials are read after claiming; a rotated
// refresh token is written in the same transaction that records the refresh;
// an invalid_grant after another worker rotated the token is not a failure.
import {
  claimConnection,
  type ConnectionRow,
  getConnection,
  recordRefresh,
  recordRefreshFailure,
  type RefreshPolicy,
  releaseLease,
} from "../db/connections.ts";
import {
  credentialsVersion,
  openCredentials,
  readCredentials,
  sealCredentials,
  type SealedCredentials,
  type StoredCredentials,
} from "../db/credentials.ts";
import { insertRun, type RunRecord } from "../db/runs.ts";
import { Deadline, type Deps } from "../deps.ts";
import { describeInternal } from "../errors.ts";
import { VaultDecryptError } from "../vault.ts";
import { adapterFor, providerFacts, PROVIDERS } from "../providers/registry.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type Credentials,
  ProviderError,
  type ProviderFacts,
  type ProviderName,
} from "../providers/types.ts";

/** Long enough for a slow provider call with retries; a crashed worker's claim lapses after it. */
export const LEASE_SECONDS = 120;
const DAY = 86_400;

/** When each provider's connections fall due, derived from the adapters' facts. */
export const refreshPolicies: RefreshPolicy[] = PROVIDERS.map((provider) => {
  const facts: ProviderFacts = providerFacts[provider];
  const idle = facts.refreshTokenIdleSeconds;
  return {
    provider,
    access_margin_s: facts.refreshMarginSeconds,
    // Renew a refresh token a week before it dies (sooner for short idle windows).
    refresh_margin_s: Math.min(7 * DAY, idle ? Math.floor(idle / 4) : 7 * DAY),
    check_interval_s: DAY,
  };
});

export function adapterContext(deps: Deps): AdapterContext {
  return { fetch: deps.fetch, now: deps.now, app: (provider) => deps.env.apps[provider] };
}

export function connectionRef(row: ConnectionRow): ConnectionRef {
  return {
    id: row.id,
    provider: row.provider as ProviderName,
    externalId: row.external_id,
    config: row.config,
  };
}

export type RefreshOutcome = "refreshed" | "failed" | "reauth_required" | "skipped";

/**
 * Refreshes one claimed connection and records everything; never throws for provider failures.
 * `sealed`: its credentials as read after the claim (readSealedCredentials, the sweep reads a
 * batch's at once); read here when not given.
 */
export async function refreshClaimed(
  deps: Deps,
  row: ConnectionRow,
  owner: string,
  sealed?: SealedCredentials,
): Promise<RefreshOutcome> {
  const started = deps.now();
  const run = (status: "succeeded" | "failed" | "skipped", extra: Partial<RunRecord> = {}) =>
    insertRun(deps.db, {
      connection_id: row.id,
      kind: "refresh",
      status,
      started_at: started,
      finished_at: deps.now(),
      ...extra,
    });
  // Someone else's newer credentials stand: not a failure.
  const skip = async (reason: string): Promise<RefreshOutcome> => {
    await releaseLease(deps.db, row.id, owner);
    await run("skipped", { error: reason });
    return "skipped";
  };

  let stored: StoredCredentials | undefined;
  try {
    // Read after claiming (rule 1); a value the key ring cannot decrypt fails this connection only.
    stored = sealed
      ? await openCredentials(deps.vault, row.id, sealed)
      : await readCredentials(deps.db, deps.vault, row.id);
    const grant = await adapterFor(row.provider).refresh(
      adapterContext(deps),
      connectionRef(row),
      stored.values,
    );
    // One call writes the new credentials (a rotated refresh token first of all), the
    // connection's state and the run, in one transaction, if the credentials are still the ones
    // refreshed: a reconnect or another worker may have replaced them meanwhile.
    const written = await recordRefresh(deps.db, row.id, owner, {
      version: stored.version,
      sealed: await sealCredentials(deps.vault, row.id, grant.credentials),
      now: deps.now(),
      startedAt: started,
      tokenExpiresAt: grant.accessTokenExpiresAt,
      refreshTokenExpiresAt: grant.refreshTokenExpiresAt,
      refreshTokenRotated: grant.refreshTokenRotated,
    });
    return written ? "refreshed" : await skip("credentials were replaced during the refresh");
  } catch (err) {
    if (err instanceof ProviderError && err.reauthRequired && stored) {
      // Rule 1: another worker (or a reconnect) may already have rotated the token.
      if (await credentialsVersion(deps.db, row.id) !== stored.version) {
        return await skip("token already rotated elsewhere");
      }
    }
    const known = err instanceof ProviderError;
    // A credential no key of the ring can decrypt will not decrypt on retry: a person must add
    // the key (or reconnect). Said as such, never an `error` retried forever.
    const missingKey = isMissingKey(err);
    const status = (known && err.reauthRequired) || missingKey ? "reauth_required" : "error";
    const message = known
      ? err.message
      : missingKey
      ? `stored credentials cannot be decrypted: ${err.message}, or reconnect it`
      : describeInternal(err);
    await recordRefreshFailure(deps.db, row.id, owner, {
      now: deps.now(),
      status,
      error: message,
      retryAfterMs: known ? err.retryAfterMs : undefined,
    });
    await run("failed", {
      error: message,
      details: { code: known ? err.code : missingKey ? "missing_key" : "internal" },
    });
    deps.log[known ? "warn" : "error"]("refresh failed", {
      connection_id: row.id,
      provider: row.provider,
      error: message,
    });
    return status === "reauth_required" ? "reauth_required" : "failed";
  }
}

/** A stored value was encrypted with a key the ring does not hold. */
function isMissingKey(err: unknown): err is VaultDecryptError {
  return err instanceof VaultDecryptError && err.code === "unknown_key_id";
}

/** Why a connection gives no token: what a caller must do differs for each. */
export type UnavailableReason =
  | "unknown"
  | "reauth_required"
  | "disabled"
  | "refresh_failed"
  | "busy";

export class ConnectionUnavailable extends Error {
  override readonly name = "ConnectionUnavailable";
  constructor(readonly reason: UnavailableReason, message: string) {
    super(message);
  }
}

/**
 * A valid access token for a connection, refreshed on demand when it is within
 * the provider's margin (or `force`), single-flight with the background sweep:
 * if another worker holds the connection, wait for it and use its result.
 */
export async function getAccessToken(
  deps: Deps,
  connectionId: string,
  opts: { force?: boolean; waitMs?: number } = {},
): Promise<{ token: string; credentials: Credentials; connection: ConnectionRow }> {
  const deadline = new Deadline(deps.clock, opts.waitMs ?? 30_000);
  let force = opts.force ?? false;
  while (true) {
    const row = await getConnection(deps.db, connectionId);
    if (!row) {
      throw new ConnectionUnavailable("unknown", `connection ${connectionId} does not exist`);
    }
    if (row.status === "reauth_required" || row.status === "disabled") {
      throw new ConnectionUnavailable(
        row.status,
        `connection ${row.name} (${row.provider}) is ${row.status}: ${
          row.last_error ?? "reconnect it"
        }`,
      );
    }
    const adapter = adapterFor(row.provider);
    const margin = adapter.facts.refreshMarginSeconds * 1000;
    const fresh = row.token_expires_at === null ||
      row.token_expires_at.getTime() - margin > deps.now().getTime();
    if (fresh && !force && row.status === "active") {
      try {
        const { values } = await readCredentials(deps.db, deps.vault, row.id);
        return { token: adapter.accessToken(values), credentials: values, connection: row };
      } catch (err) {
        // Its key is missing: the claimed refresh below records reauth_required naming it.
        if (!isMissingKey(err)) throw err;
        force = true;
      }
    }
    const owner = `on-demand:${crypto.randomUUID()}`;
    const claimed = await claimConnection(deps.db, row.id, {
      owner,
      now: deps.now(),
      leaseSeconds: LEASE_SECONDS,
    });
    if (claimed) {
      // Another worker refreshed between our read and our claim: its token is the one to use
      // (without this, a caller that read the row just before that refresh committed would
      // refresh a second time).
      if (claimed.last_token_refresh_at?.getTime() !== row.last_token_refresh_at?.getTime()) {
        await releaseLease(deps.db, row.id, owner);
        force = false;
        continue;
      }
      const outcome = await refreshClaimed(deps, claimed, owner);
      if (outcome === "refreshed" || outcome === "skipped") {
        force = false;
        continue;
      }
      const after = await getConnection(deps.db, row.id);
      throw new ConnectionUnavailable(
        outcome === "reauth_required" ? "reauth_required" : "refresh_failed",
        `could not refresh the ${row.provider} token of ${row.name}: ${after?.last_error}`,
      );
    }
    // Another worker is refreshing this connection: wait for its result.
    if (deadline.passed) {
      throw new ConnectionUnavailable(
        "busy",
        `timed out waiting for another refresh of ${row.name}`,
      );
    }
    force = false;
    await deps.clock.sleep(200);
  }
}

/**
 * A connection's credentials for the length of one job's calls: read (refreshed if due) when
 * opened, and refreshed once more, on demand, the first time the provider answers 401 (an access
 * token revoked or expired early). The on-demand half of the refresh strategy.
 */
export class ConnectionAccess {
  #refreshed = false;

  private constructor(
    private readonly deps: Deps,
    readonly connection: ConnectionRow,
    public credentials: Credentials,
  ) {}

  static async open(deps: Deps, connectionId: string): Promise<ConnectionAccess> {
    const { connection, credentials } = await getAccessToken(deps, connectionId);
    return new ConnectionAccess(deps, connection, credentials);
  }

  /** Calls the provider; after its first 401, refreshes and calls once more. */
  async call<T>(fn: (credentials: Credentials) => Promise<T>): Promise<T> {
    try {
      return await fn(this.credentials);
    } catch (err) {
      if (!(err instanceof ProviderError) || err.code !== "unauthorized" || this.#refreshed) {
        throw err;
      }
      this.#refreshed = true;
      const fresh = await getAccessToken(this.deps, this.connection.id, { force: true });
      this.credentials = fresh.credentials;
      return await fn(this.credentials);
    }
  }
}

/** Calls the provider with a valid token; after a 401 refreshes once and retries once. */
export async function withAccessToken<T>(
  deps: Deps,
  connectionId: string,
  call: (credentials: Credentials, connection: ConnectionRow) => Promise<T>,
): Promise<T> {
  const access = await ConnectionAccess.open(deps, connectionId);
  return await access.call((credentials) => call(credentials, access.connection));
}
