// provider name → adapter, typed: `adapters.shopify.facts.apiVersion` is known to the compiler, and
// a provider added to PROVIDERS without an adapter is a type error here.

import { lightspeedAdapter } from "./lightspeed/adapter.ts";
import { maystroAdapter } from "./maystro/adapter.ts";
import { quickbooksAdapter } from "./quickbooks/adapter.ts";
import { shipheroAdapter } from "./shiphero/adapter.ts";
import { shopifyAdapter } from "./shopify/adapter.ts";
import {
  isProviderName,
  type ProviderAdapter,
  type ProviderFacts,
  type ProviderName,
  type ProviderOAuth,
  PROVIDERS,
} from "./types.ts";

export const adapters = {
  shiphero: shipheroAdapter,
  shopify: shopifyAdapter,
  lightspeed: lightspeedAdapter,
  quickbooks: quickbooksAdapter,
  maystro: maystroAdapter,
} as const satisfies { readonly [P in ProviderName]: ProviderAdapter & { readonly provider: P } };

export type Adapters = typeof adapters;

export function getAdapter<P extends ProviderName>(provider: P): Adapters[P] {
  return adapters[provider];
}

/** The adapter for a name read from outside (a request body, a row); throws on an unknown name. */
export function adapterFor(provider: string): ProviderAdapter {
  if (!isProviderName(provider)) {
    throw new Error(`unknown provider "${provider}"; expected one of ${PROVIDERS.join(", ")}`);
  }
  return adapters[provider];
}

/** Providers whose adapter has an OAuth flow. */
export type OAuthProvider = {
  [P in ProviderName]: Adapters[P] extends { readonly oauth: ProviderOAuth } ? P : never;
}[ProviderName];

export const OAUTH_PROVIDERS = PROVIDERS.filter((p): p is OAuthProvider =>
  (adapters[p] as ProviderAdapter).oauth !== undefined
);

export function isOAuthProvider(value: string): value is OAuthProvider {
  return (OAUTH_PROVIDERS as readonly string[]).includes(value);
}

/** The OAuth flow of a provider that has one. */
export function oauthOf(provider: OAuthProvider): ProviderOAuth {
  return adapters[provider].oauth;
}

/** Static facts of every provider, for code that needs no adapter (schedules, health views). */
export const providerFacts: { readonly [P in ProviderName]: Adapters[P]["facts"] } = {
  shiphero: shipheroAdapter.facts,
  shopify: shopifyAdapter.facts,
  lightspeed: lightspeedAdapter.facts,
  quickbooks: quickbooksAdapter.facts,
  maystro: maystroAdapter.facts,
};

export type { ProviderFacts };
export { PROVIDERS };
