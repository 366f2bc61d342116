// What every provider's OAuth module shares: the failure a person is shown, and the check of one
// callback parameter.
import { joinUrl } from "./http.ts";

/** An OAuth flow's failure that is the caller's or the provider's, shown on the error page. */
export class OAuthFailure extends Error {
  override readonly name = "OAuthFailure";
}

/** A required callback parameter, matched against `pattern`; OAuthFailure naming it otherwise. */
export function callbackParam(query: URLSearchParams, name: string, pattern: RegExp): string {
  const value = query.get(name);
  if (value === null || value === "") {
    throw new OAuthFailure(`the provider's answer has no ${name}`);
  }
  if (!pattern.test(value)) throw new OAuthFailure(`the provider's answer has a malformed ${name}`);
  return value;
}

/**
 * An authorize URL: `path` under `base`, with `params` in the given order; a space is `%20` (as
 * the providers' own examples write a scope list), never the form encoding's `+`.
 */
export function authorizeUrlOf(base: string, path: string, params: Record<string, string>): string {
  const url = new URL(joinUrl(base, path));
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  // URLSearchParams writes a literal "+" as %2B, so every "+" left is a space.
  return url.toString().replaceAll("+", "%20");
}
