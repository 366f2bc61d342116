// Schemas and input checks every adapter shares: the base-URL overrides of a connection's config,
// token fields, and the parsing of a connection's config and stored credentials into values the
// adapter can trust (or a "misconfigured" ProviderError naming the field).

import { z } from "zod";
import { NO_CONTROL_CHARACTERS } from "../validation.ts";
import { parseWith } from "./http.ts";
import {
  type ConnectionRef,
  type Credentials,
  ProviderError,
  type ProviderFacts,
  type ProviderName,
} from "./types.ts";

/**
 * Limits of what a connection's credentials and config may hold. No provider publishes a maximum
 * token length; these are documented defaults (README, provider matrix) far above any token or
 * base URL seen, and below what a request header or a row should carry.
 */
export const LIMITS = { tokenChars: 8192, baseUrlChars: 2048 } as const;

/** Printable text: no control character (U+0000–U+001F, U+007F), nor a space in a URL. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const PRINTABLE = /^[^\u0000-\u001f\u007f]*$/;
// deno-lint-ignore no-control-regex -- matching control characters is the point
const URL_CHARACTERS = /^[^\u0000-\u0020\u007f]*$/;

/** An absolute http(s) URL with no query or fragment: the scheme + host (+ path prefix) to use. */
export const baseUrl = z
  .string()
  .max(LIMITS.baseUrlChars, `expected at most ${LIMITS.baseUrlChars} characters`)
  .regex(URL_CHARACTERS, "expected a URL without spaces or control characters")
  .pipe(z.url({ protocol: /^https?$/, error: "expected an absolute http(s) URL" }))
  .refine((value) => {
    const url = new URL(value);
    return url.search === "" && url.hash === "" && url.username === "" && url.password === "";
  }, "expected a URL without query, fragment or user info");

/** Fields every provider's config may hold: they replace the documented scheme + host. */
export const baseConfigShape = {
  auth_base_url: baseUrl.optional(),
  api_base_url: baseUrl.optional(),
};

/** A token as stored or received: a non-empty string of printable characters, at most 8 KiB. */
export const token = z
  .string()
  .min(1, "expected a non-empty string")
  .max(LIMITS.tokenChars, `expected at most ${LIMITS.tokenChars} characters`)
  .regex(PRINTABLE, NO_CONTROL_CHARACTERS);

/** A lifetime in seconds as providers send it: a non-negative number. */
export const seconds = z.number().nonnegative();

/**
 * Checks that the connection belongs to this adapter and parses its config. A mismatch is
 * "misconfigured" (the connection row is wrong; retrying will not help).
 */
export function parseConfig<C extends z.ZodType>(
  provider: ProviderName,
  conn: ConnectionRef,
  schema: C,
): z.output<C> {
  if (conn.provider !== provider) {
    throw new Error(`${provider} adapter was given a ${conn.provider} connection (${conn.id})`);
  }
  return parseWith(provider, "misconfigured", "connection config", schema, conn.config);
}

/**
 * A provider's credential fields, as the two readings an adapter needs: `accepted`, what `connect`
 * takes (strict: an unknown field is refused by name), and `parse(stored)`, the stored fields read
 * leniently (a field an earlier version stored is ignored), a missing or empty one
 * "misconfigured" naming it. Neither message ever quotes a value.
 */
export function credentialFields<const S extends z.ZodRawShape>(provider: ProviderName, shape: S) {
  const stored = z.object(shape);
  return {
    accepted: z.strictObject(shape),
    parse: (creds: Credentials): z.output<typeof stored> =>
      parseWith(provider, "misconfigured", "stored credentials", stored, creds, {
        secrets: Object.values(creds),
      }),
  };
}

/** The credential that authenticates API calls, or "misconfigured" when it is not stored (yet). */
export function requireCredential(
  provider: ProviderName,
  creds: Credentials,
  field: string,
  hint = "",
): string {
  const value = creds[field];
  if (value !== undefined && value !== "") return value;
  throw new ProviderError(
    provider,
    "misconfigured",
    `${provider} credentials hold no ${field}${hint === "" ? "" : `: ${hint}`}`,
  );
}

/** A provider timestamp as ISO 8601 UTC; throws an error naming the text when it is not one. */
export function iso(text: string): string {
  const utc = canonicalUtc(text);
  if (utc !== undefined) return utc;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`not a timestamp: ${text}`);
  return new Date(ms).toISOString();
}

const UTC_TEXT =
  /^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?Z$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * What `toISOString()` would print for a timestamp already written that way in UTC
 * (`2026-03-14T12:34:56Z`, with or without milliseconds), without a Date: two conversions a record
 * were a tenth of a sync page's CPU. Undefined for anything else, a day past its month's end
 * included (Date.parse rolls `02-30` over into March; the slow path keeps that behaviour).
 */
function canonicalUtc(text: string): string | undefined {
  const m = UTC_TEXT.exec(text);
  if (m === null) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (Number(m[3]) > days) return undefined;
  return m[4] === undefined ? `${text.slice(0, 19)}.000Z` : text;
}

/** iso() of an optional timestamp: null stays null. */
export function isoOrNull(text: string | null | undefined): string | null {
  return text === null || text === undefined ? null : iso(text);
}

/** Declares a provider's facts: checked against ProviderFacts, extra provider-specific facts kept typed. */
export function defineFacts<const F extends ProviderFacts>(facts: F): F {
  return facts;
}

/** The page size to ask for: the caller's wish or the provider's default, within 1 … max. */
export function pageSizeFor(facts: ProviderFacts, wanted: number | undefined): number {
  return Math.max(1, Math.min(Math.trunc(wanted ?? facts.pageSize.default), facts.pageSize.max));
}
