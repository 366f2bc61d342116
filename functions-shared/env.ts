// Configuration of the Edge Functions, read once from the environment. A
// missing or malformed value is a startup error that names the variable and
// never shows its value.
import { type CallerAuthConfig, callerAuthConfigFromEnv } from "./auth.ts";
import type { AppCredentials, ProviderName } from "./providers/types.ts";
import { DEFAULT_TIMEOUT_MS } from "./providers/http.ts";

export class EnvError extends Error {
  override readonly name = "EnvError";
}

export interface TetherEnv {
  /** TETHER_DB_URL (e.g. Supavisor in transaction mode, port 6543), else SUPABASE_DB_URL. */
  databaseUrl: string;
  /** Connections each function worker opens at most (TETHER_DB_POOL_SIZE). */
  dbPoolSize: number;
  /** TOKEN_ENCRYPTION_KEYS, or TOKEN_ENCRYPTION_KEY as a one-key ring. */
  tokenKeyRing: string;
  auth: CallerAuthConfig;
  /** OAuth apps per provider: SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET, … */
  apps: Partial<Record<ProviderName, AppCredentials>>;
  /** How long one invocation takes new work for (TETHER_TIME_BUDGET_MS, TIME_BUDGET_MS). */
  timeBudgetMs: number;
  /**
   * CPU time a job may spend before it stops taking work (TETHER_CPU_BUDGET_MS, default 1,500):
   * under the Edge Runtime's 2 s per request, with room for the page in hand.
   */
  cpuBudgetMs: number;
  /**
   * The CPU a written record is estimated to cost (TETHER_CPU_MS_PER_RECORD, default 0.08 ms),
   * charged against `cpuBudgetMs` where the runtime cannot measure CPU: the Edge Runtime's Deno
   * (2.1.4) answers process.cpuUsage() with zeros. Measured on it: 14.6 ms of CPU per 250-record
   * Shopify page (0.058 ms a record) in `npm run bench -- sync`.
   */
  cpuMsPerRecord: number;
  /**
   * The CPU a token refresh is estimated to cost (TETHER_CPU_MS_PER_REFRESH, default 3 ms), charged
   * against `cpuBudgetMs` likewise: about 500 refreshes per invocation. Measured on the Edge
   * Runtime's Deno through the local gateway in `npm run bench -- refresh` (four providers): 1.5
   * ms of the worker's CPU per refresh once a refresh's writes became one call and claims a batch
   * (`worker_cpu_ms_per_refresh`), at most 1.9 ms per refresh charged to one invocation (355 ms
   * for 187); 3 ms keeps 500 refreshes near 1 s, under the 1.5 s budget and the 2 s limit. The
   * earlier sweep cost 5.5 ms (2,738 ms for about 500 refreshes, ended at 546
   * WORKER_RESOURCE_LIMIT before any charge), charged 8 ms.
   */
  cpuMsPerRefresh: number;
  /**
   * The CPU one stream's sync run is estimated to cost besides its records (claim, token, run
   * record, page request and parse, checkpoint: TETHER_CPU_MS_PER_SYNC_RUN, default 12 ms), charged
   * against `cpuBudgetMs` likewise, so an invocation syncing many small streams stops in time
   * (about 125 a call). Measured on the Edge Runtime's Deno through the local gateway: at most
   * 1,975 ms for 166 streams of one small page (11 to 12 ms each; `npm run bench -- scale`), where
   * without it sync invocations ended at 546 WORKER_RESOURCE_LIMIT.
   */
  cpuMsPerSyncRun: number;
  /**
   * SUPABASE_URL + "/functions/v1": where the project's functions answer, which Supabase sets for
   * every function (a sync invocation starts its siblings there: functions-shared/invoke.ts).
   * Undefined when SUPABASE_URL is not set.
   */
  functionsUrl?: string;
  /** App-level webhook secrets; per-connection ones live in the connection's credentials. */
  webhooks: WebhookSecrets;
  /** OAuth connect (`GET /connect/<provider>/start|callback`). */
  oauth: OAuthSettings;
}

export interface OAuthSettings {
  /** TETHER_OAUTH_STATE_SECRET: signs the `state` (HS256); OAuth routes answer 500 without it. */
  stateSecret?: string;
  /** TETHER_PUBLIC_FUNCTIONS_URL, else SUPABASE_URL + "/functions/v1": where callbacks land. */
  publicFunctionsUrl?: string;
  /**
   * SHOPIFY_BASE_URL / LIGHTSPEED_BASE_URL / QUICKBOOKS_BASE_URL (local stack and tests only):
   * replaces scheme and host of the provider's authorize, token and API endpoints, and is stored
   * as the new connection's `auth_base_url` / `api_base_url`.
   */
  baseUrls: Partial<Record<"shopify" | "lightspeed" | "quickbooks", string>>;
  /**
   * LIGHTSPEED_SCOPES (space-separated), SHOPIFY_SCOPES (comma-separated): replaces the scopes a
   * provider's authorize URL asks for,
   * where the provider documents no exact list Tether can pin (see the README's provider matrix).
   */
  scopes: Partial<Record<"shopify" | "lightspeed" | "quickbooks", string>>;
}

export interface WebhookSecrets {
  /** SHOPIFY_CLIENT_SECRET, then SHOPIFY_PREVIOUS_CLIENT_SECRET during a rotation. */
  shopify: string[];
  /** QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN. */
  quickbooks: string[];
  /** LIGHTSPEED_CLIENT_SECRET. */
  lightspeed: string[];
  /** LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING: how X-Signature encodes the HMAC (default hex). */
  lightspeedEncoding: "hex" | "base64";
}

type Get = (name: string) => string | undefined;

function required(get: Get, name: string, hint: string): string {
  const value = get(name)?.trim();
  if (!value) throw new EnvError(`${name} is not set: ${hint}`);
  return value;
}

/**
 * The Edge Runtime's wall clock on the free plan: how long a worker stays active
 * (supabase.com/docs/guides/functions/limits: "Maximum Duration (Wall clock limit): This is the
 * duration an Edge Function worker will stay active. During this period, a worker can serve
 * multiple requests or process background tasks. Free plan: 150s, Paid plans: 400s").
 */
export const EDGE_WALL_CLOCK_MS = 150_000;

/**
 * What a job may still spend once its time budget is passed: the page in hand, whose provider
 * request may have begun just before (at most DEFAULT_TIMEOUT_MS, a retry waits only within the
 * budget), then its write, checkpoint and run record (5 s).
 */
export const AFTER_BUDGET_MS = DEFAULT_TIMEOUT_MS + 5_000;

/**
 * TETHER_TIME_BUDGET_MS: its default, which is also its most. The Edge Runtime retires a worker at
 * half its wall clock and terminates it at the full wall clock, counted from the worker's start,
 * whatever it is running (supabase/edge-runtime crates/base/src/worker/supervisor/
 * strategy_per_worker.rs: the wall clock "split into 2 intervals", `early_retire_fn` at the first,
 * `ShutdownReason::WallClockTime` at the second). A request that lands on a worker just before its
 * retirement has only the other half, 75 s on the free plan, so a job's budget and what it spends
 * after it must fit in half the wall clock: 75 s - 20 s = 55 s. A paid plan's 400 s leaves more;
 * one bound safe on every plan is simpler than a plan setting, and a job resumes from its checkpoint
 * anyway.
 */
export const TIME_BUDGET_MS = {
  min: 1_000,
  default: EDGE_WALL_CLOCK_MS / 2 - AFTER_BUDGET_MS,
  max: EDGE_WALL_CLOCK_MS / 2 - AFTER_BUDGET_MS,
} as const;

/** Connections per worker: the direct connection's default, and the pooler's (TETHER_DB_URL). */
export const DB_POOL_SIZE = { direct: 5, pooler: 2, max: 20 } as const;

export function readEnv(get: Get): TetherEnv {
  // Supabase sets SUPABASE_DB_URL (the direct connection) and reserves the SUPABASE_ prefix for
  // itself, so a deploy points the functions elsewhere, e.g. at the pooler, with TETHER_DB_URL.
  const pooled = get("TETHER_DB_URL")?.trim() || undefined;
  const databaseUrl = pooled ?? required(
    get,
    "SUPABASE_DB_URL",
    "Supabase sets it for deployed functions; locally the stack does",
  );
  if (pooled) {
    let url: URL | undefined;
    try {
      url = new URL(pooled);
    } catch { /* reported below */ }
    if (!url || !["postgres:", "postgresql:"].includes(url.protocol) || !url.hostname) {
      throw new EnvError(
        "TETHER_DB_URL must be a Postgres URL (postgresql://user:pass@host:port/db)",
      );
    }
  }
  const poolText = get("TETHER_DB_POOL_SIZE")?.trim();
  const dbPoolSize = poolText
    ? Number(poolText)
    : pooled
    ? DB_POOL_SIZE.pooler
    : DB_POOL_SIZE.direct;
  if (!Number.isInteger(dbPoolSize) || dbPoolSize < 1 || dbPoolSize > DB_POOL_SIZE.max) {
    throw new EnvError(`TETHER_DB_POOL_SIZE must be a whole number from 1 to ${DB_POOL_SIZE.max}`);
  }
  const tokenKeyRing = get("TOKEN_ENCRYPTION_KEYS")?.trim() || get("TOKEN_ENCRYPTION_KEY")?.trim();
  if (!tokenKeyRing) {
    throw new EnvError(
      "TOKEN_ENCRYPTION_KEYS is not set: set it with `supabase secrets set TOKEN_ENCRYPTION_KEYS=k1:<32 random bytes, base64>`",
    );
  }
  const apps: TetherEnv["apps"] = {};
  for (const provider of ["shopify", "lightspeed", "quickbooks"] as const) {
    const prefix = provider.toUpperCase();
    const clientId = get(`${prefix}_CLIENT_ID`)?.trim();
    const clientSecret = get(`${prefix}_CLIENT_SECRET`)?.trim();
    const previousClientSecret = get(`${prefix}_PREVIOUS_CLIENT_SECRET`)?.trim() || undefined;
    if (clientId && clientSecret) {
      apps[provider] = {
        clientId,
        clientSecret,
        ...(previousClientSecret && { previousClientSecret }),
      };
    } else if (clientId || clientSecret) {
      throw new EnvError(
        `${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET must be set together (only one is)`,
      );
    }
  }
  const budget = get("TETHER_TIME_BUDGET_MS")?.trim();
  const timeBudgetMs = budget ? Number(budget) : TIME_BUDGET_MS.default;
  if (
    !Number.isInteger(timeBudgetMs) || timeBudgetMs < TIME_BUDGET_MS.min ||
    timeBudgetMs > TIME_BUDGET_MS.max
  ) {
    throw new EnvError(
      `TETHER_TIME_BUDGET_MS must be a whole number of ms from ${TIME_BUDGET_MS.min} to ${TIME_BUDGET_MS.max} (half the Edge Runtime's 150 s wall clock, less ${AFTER_BUDGET_MS} ms for the page in hand)`,
    );
  }
  const cpuBudget = get("TETHER_CPU_BUDGET_MS")?.trim();
  const cpuBudgetMs = cpuBudget ? Number(cpuBudget) : 1_500;
  if (!Number.isInteger(cpuBudgetMs) || cpuBudgetMs < 100 || cpuBudgetMs > 1_900) {
    throw new EnvError("TETHER_CPU_BUDGET_MS must be a whole number of ms from 100 to 1900");
  }
  const perRecord = get("TETHER_CPU_MS_PER_RECORD")?.trim();
  const cpuMsPerRecord = perRecord ? Number(perRecord) : 0.08;
  if (!Number.isFinite(cpuMsPerRecord) || cpuMsPerRecord <= 0 || cpuMsPerRecord > 100) {
    throw new EnvError("TETHER_CPU_MS_PER_RECORD must be a number of ms above 0, at most 100");
  }
  const perRefresh = get("TETHER_CPU_MS_PER_REFRESH")?.trim();
  const cpuMsPerRefresh = perRefresh ? Number(perRefresh) : 3;
  if (!Number.isFinite(cpuMsPerRefresh) || cpuMsPerRefresh <= 0 || cpuMsPerRefresh > 1_000) {
    throw new EnvError("TETHER_CPU_MS_PER_REFRESH must be a number of ms above 0, at most 1000");
  }
  const perSyncRun = get("TETHER_CPU_MS_PER_SYNC_RUN")?.trim();
  const cpuMsPerSyncRun = perSyncRun ? Number(perSyncRun) : 12;
  if (!Number.isFinite(cpuMsPerSyncRun) || cpuMsPerSyncRun <= 0 || cpuMsPerSyncRun > 1_000) {
    throw new EnvError("TETHER_CPU_MS_PER_SYNC_RUN must be a number of ms above 0, at most 1000");
  }
  const optional = (name: string) => get(name)?.trim() || undefined;
  const supabaseUrl = optional("SUPABASE_URL");
  const encoding = optional("LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING") ?? "hex";
  if (encoding !== "hex" && encoding !== "base64") {
    throw new EnvError("LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING must be hex or base64");
  }
  const previous = optional("SHOPIFY_PREVIOUS_CLIENT_SECRET");
  const webhooks: WebhookSecrets = {
    shopify: [apps.shopify?.clientSecret, previous].filter((v): v is string => v !== undefined),
    quickbooks: [optional("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN")].filter((v): v is string =>
      v !== undefined
    ),
    lightspeed: [apps.lightspeed?.clientSecret].filter((v): v is string => v !== undefined),
    lightspeedEncoding: encoding,
  };
  return {
    databaseUrl,
    dbPoolSize,
    tokenKeyRing,
    oauth: readOAuthSettings(get),
    auth: callerAuthConfig(get),
    apps,
    timeBudgetMs,
    cpuBudgetMs,
    cpuMsPerRecord,
    cpuMsPerRefresh,
    cpuMsPerSyncRun,
    ...(supabaseUrl && { functionsUrl: `${httpUrl("SUPABASE_URL", supabaseUrl)}/functions/v1` }),
    webhooks,
  };
}

/** Caller auth's configuration; its errors (which name the variable, never a value) are EnvErrors. */
function callerAuthConfig(get: Get): CallerAuthConfig {
  try {
    return callerAuthConfigFromEnv(get);
  } catch (err) {
    throw new EnvError((err as Error).message);
  }
}

/** Minimum length of TETHER_OAUTH_STATE_SECRET (HS256 wants at least 256 bits). */
const STATE_SECRET_MIN_CHARS = 32;

function httpUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new EnvError(`${name} is not a valid URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new EnvError(`${name} must be an http(s) URL`);
  }
  return value.replace(/\/+$/, "");
}

function readOAuthSettings(get: Get): OAuthSettings {
  const cpuBudget = get("TETHER_CPU_BUDGET_MS")?.trim();
  const cpuBudgetMs = cpuBudget ? Number(cpuBudget) : 1_500;
  if (!Number.isInteger(cpuBudgetMs) || cpuBudgetMs < 100 || cpuBudgetMs > 1_900) {
    throw new EnvError("TETHER_CPU_BUDGET_MS must be a whole number of ms from 100 to 1900");
  }
  const optional = (name: string) => get(name)?.trim() || undefined;
  const settings: OAuthSettings = { baseUrls: {}, scopes: {} };
  const stateSecret = optional("TETHER_OAUTH_STATE_SECRET");
  if (stateSecret !== undefined) {
    if (stateSecret.length < STATE_SECRET_MIN_CHARS) {
      throw new EnvError(
        `TETHER_OAUTH_STATE_SECRET must be at least ${STATE_SECRET_MIN_CHARS} characters (e.g. \`openssl rand -base64 32\`)`,
      );
    }
    settings.stateSecret = stateSecret;
  }
  const publicUrl = optional("TETHER_PUBLIC_FUNCTIONS_URL");
  const supabaseUrl = optional("SUPABASE_URL");
  if (publicUrl !== undefined) {
    settings.publicFunctionsUrl = httpUrl("TETHER_PUBLIC_FUNCTIONS_URL", publicUrl);
  } else if (supabaseUrl !== undefined) {
    settings.publicFunctionsUrl = `${httpUrl("SUPABASE_URL", supabaseUrl)}/functions/v1`;
  }
  for (const provider of ["shopify", "lightspeed", "quickbooks"] as const) {
    const name = `${provider.toUpperCase()}_BASE_URL`;
    const value = optional(name);
    if (value !== undefined) settings.baseUrls[provider] = httpUrl(name, value);
  }
  const lightspeedScopes = optional("LIGHTSPEED_SCOPES")?.split(/\s+/).join(" ");
  if (lightspeedScopes !== undefined) settings.scopes.lightspeed = lightspeedScopes;
  // Shopify's list is comma-separated ("scope={scopes}", e.g. read_orders,read_customers).
  const shopifyScopes = optional("SHOPIFY_SCOPES")?.split(/[\s,]+/).filter(Boolean).join(",");
  if (shopifyScopes) settings.scopes.shopify = shopifyScopes;
  return settings;
}
