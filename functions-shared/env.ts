// Configuration of the Edge Functions, read once from the environment. A
// missing or malformed value is a startup error that names the variable and
// never shows its value.
import { type CallerAuthConfig, callerAuthConfigFromEnv } from "./auth.ts";
import type { AppCredentials, ProviderName } from "./providers/types.ts";

export class EnvError extends Error {
  override readonly name = "EnvError";
}

export interface TetherEnv {
  databaseUrl: string;
  /** TOKEN_ENCRYPTION_KEYS, or TOKEN_ENCRYPTION_KEY as a one-key ring. */
  tokenKeyRing: string;
  auth: CallerAuthConfig;
  /** OAuth apps per provider: SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET, … */
  apps: Partial<Record<ProviderName, AppCredentials>>;
  /** How long one invocation takes new work for (rule 5: well under the 150 s wall clock). */
  timeBudgetMs: number;
  /** App-level webhook secrets; per-connection ones live in the connection's credentials. */
  webhooks: WebhookSecrets;
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

export function readEnv(get: Get): TetherEnv {
  const databaseUrl = required(
    get,
    "SUPABASE_DB_URL",
    "Supabase sets it for deployed functions; locally the stack does",
  );
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
    if (clientId && clientSecret) apps[provider] = { clientId, clientSecret };
    else if (clientId || clientSecret) {
      throw new EnvError(
        `${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET must be set together (only one is)`,
      );
    }
  }
  const budget = get("TETHER_TIME_BUDGET_MS")?.trim();
  const timeBudgetMs = budget ? Number(budget) : 100_000;
  if (!Number.isInteger(timeBudgetMs) || timeBudgetMs < 1_000 || timeBudgetMs > 140_000) {
    throw new EnvError("TETHER_TIME_BUDGET_MS must be a whole number of ms from 1000 to 140000");
  }
  const optional = (name: string) => get(name)?.trim() || undefined;
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
    tokenKeyRing,
    auth: callerAuthConfigFromEnv(get),
    apps,
    timeBudgetMs,
    webhooks,
  };
}
