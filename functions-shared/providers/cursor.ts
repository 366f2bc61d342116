// The cursor of streams read in ascending order of the provider's last-update time (Shopify,
// ShipHero, QuickBooks): `{"since": ISO}` means "every change before `since` is stored". Each page
// is a fresh query for `updated >= since and updated <= until`, oldest first, so a resumed read
// re-reads at most the records that share the page's last timestamp (stored again as unchanged),
// never skips one. When a whole page shares one timestamp the read cannot move `since`, so it
// continues with the provider's own page token (`after`: a Relay cursor, a STARTPOSITION) for the
// same query. When the read is done the cursor is `until` minus the clock-skew overlap: never past
// the start of the run (docs/architecture.md rule 4).

import { z } from "zod";
import { parseWith } from "./http.ts";
import type { ProviderName, StreamPage } from "./types.ts";

/** Re-read this much before the last run's start, so a provider clock a little behind ours loses nothing. */
export const SYNC_OVERLAP_SECONDS = 120;

const timeCursorSchema = z.strictObject({
  since: z.iso.datetime({ offset: true }).nullable(),
  after: z.string().min(1).optional(),
});
export type TimeCursor = z.output<typeof timeCursorSchema>;

/** The stored cursor, or the start of a read from `from` (null = the whole history). */
export function readTimeCursor(
  provider: ProviderName,
  cursor: string | null,
  from: Date | null,
): TimeCursor {
  if (cursor === null) return { since: from?.toISOString() ?? null };
  return parseStoredCursor(provider, timeCursorSchema, cursor);
}

/**
 * A cursor as the job stored it (JSON text the adapter wrote), validated by the adapter's schema;
 * one that is not (a hand edit, a cursor of an older version) is "misconfigured", naming the field.
 */
export function parseStoredCursor<S extends z.ZodType>(
  provider: ProviderName,
  schema: S,
  cursor: string,
): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(cursor);
  } catch {
    json = cursor;
  }
  return parseWith(provider, "misconfigured", "stored sync cursor", schema, json);
}

/**
 * The page to return for records read with `cursor`: where the next page starts, given the
 * records' update times (ascending), the provider's token for the page after this one, and
 * whether there is one.
 */
export function timePage<R extends { remote_updated_at: string }>(
  records: R[],
  read: { cursor: TimeCursor; until: Date; nextToken: string | null; hasMore: boolean },
): StreamPage<R> {
  if (!read.hasMore) {
    const since = new Date(read.until.getTime() - SYNC_OVERLAP_SECONDS * 1000).toISOString();
    return { records, cursor: JSON.stringify({ since }), hasMore: false };
  }
  const newest = records.reduce(
    (max, r) => Math.max(max, Date.parse(r.remote_updated_at)),
    Number.NEGATIVE_INFINITY,
  );
  const since = read.cursor.since === null
    ? Number.NEGATIVE_INFINITY
    : Date.parse(read.cursor.since);
  const next: TimeCursor = newest > since
    ? { since: new Date(newest).toISOString() }
    : { since: read.cursor.since, ...(read.nextToken === null ? {} : { after: read.nextToken }) };
  return { records, cursor: JSON.stringify(next), hasMore: true };
}
