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
