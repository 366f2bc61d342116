// ShipHero's credits: the bucket a connection's pacer starts from, and what a throttle says.
//
// The bucket size is not settled by any source: the official (older) community post says 1001
// credits restored at 15/s (community.shiphero.com/t/good-news-we-have-a-new-throttling-strategy/188);
// secondary sources say 4004 at 60/s. The one real throttle message quoted by an independent
// client — "…which requires 1301 credits, but there are only 263 left. In 18 seconds you will have
// enough credits…" — fits only the latter: a query of 1301 credits is more than 1001 can ever hold,
// and (1301 − 263) / 18 s ≈ 58 credits/s. So the default is 4004 at +60/s, a connection's config can
// set its own (`credit_bucket: {capacity, restore_per_second}`), and every throttle corrects the
// model from what ShipHero reports: the credits left, the credits the query needs (the bucket holds
// at least that) and the wait (the restore rate follows from the three).

import { z } from "zod";
import type { BucketModel } from "../pacing.ts";
import type { GraphqlError } from "../http.ts";

/** The default bucket, UNCONFIRMED (see above); `credit_bucket` in the config overrides it. */
export const DEFAULT_CREDIT_BUCKET: BucketModel = { capacity: 4004, restorePerSecond: 60 };

/** `credit_bucket` in a ShipHero connection's config. */
export const creditBucketConfig = z.strictObject({
  capacity: z.number().int().positive(),
  restore_per_second: z.number().positive(),
});

export function creditBucket(config: { credit_bucket?: z.output<typeof creditBucketConfig> }) {
  const configured = config.credit_bucket;
  return configured === undefined
    ? DEFAULT_CREDIT_BUCKET
    : { capacity: configured.capacity, restorePerSecond: configured.restore_per_second };
}

/**
 * ShipHero's throttle error (code 30), as independent clients quote and parse it:
 * message "There are not enough credits to perform the requested operation, which requires 1301
 * credits, but there are only 263 left. In 18 seconds you will have enough credits to perform the
 * operation" (ShipHeroCreditLimitTest.php), and the fields `code: 30`, `required_credits`,
 * `remaining_credits`, `time_remaining: "4 seconds" | "55 minutes"` (ShipHeroThrottleError,
 * parseTimeRemaining). Fields win over the message where both are present.
 */
export interface CreditThrottle {
  waitMs?: number;
  required?: number;
  left?: number;
}

const UNIT_MS: Readonly<Record<string, number>> = { second: 1000, minute: 60_000, hour: 3_600_000 };

/** "18 seconds", "4 seconds", "55 minutes", "1 hour" → milliseconds. */
export function durationMs(text: string): number | undefined {
  const m = /(\d+(?:\.\d+)?)\s*(second|minute|hour)s?/i.exec(text);
  return m ? Math.ceil(Number(m[1]) * UNIT_MS[m[2]!.toLowerCase()]!) : undefined;
}

function count(value: unknown): number | undefined {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** The throttle among `errors`, or undefined when none is one. */
export function creditThrottle(
  errors: readonly GraphqlError[] | undefined,
): CreditThrottle | undefined {
  const error = errors?.find((e) =>
    e.code === 30 || e.code === "30" || /not enough credits/i.test(e.message ?? "")
  ) as (GraphqlError & Record<string, unknown>) | undefined;
  if (!error) return undefined;
  const message = error.message ?? "";
  const fromMessage = {
    required: count(/requires (\d+) credits/i.exec(message)?.[1]),
    left: count(/only (\d+) left/i.exec(message)?.[1]),
    waitMs: /in (\d+(?:\.\d+)? (?:second|minute|hour)s?) you will have enough/i.exec(message)?.[1],
  };
  const remaining = typeof error.time_remaining === "string" ? error.time_remaining : undefined;
  const waitText = remaining ?? fromMessage.waitMs;
  const out: CreditThrottle = {};
  const waitMs = waitText === undefined ? undefined : durationMs(waitText);
  const required = count(error.required_credits) ?? fromMessage.required;
  const left = count(error.remaining_credits) ?? fromMessage.left;
  if (waitMs !== undefined) out.waitMs = waitMs;
  if (required !== undefined) out.required = required;
  if (left !== undefined) out.left = left;
  return out;
}

/**
 * Below this wait the restore rate is not derived: ShipHero shows whole seconds, so a short wait
 * (rounded up) would understate the rate by up to half; from 10 s on, by at most a tenth.
 */
const MIN_WAIT_FOR_RATE_MS = 10_000;

/**
 * The bucket as a throttle shows it, given the model so far: `left` credits now; at least
 * `required` of capacity; and, with a wait long enough to measure, a restore rate of
 * (required − left) / wait.
 */
export function observedBucket(
  throttle: CreditThrottle,
  model: BucketModel,
): { available: number; capacity?: number; restorePerSecond?: number } | undefined {
  if (throttle.left === undefined) return undefined;
  const out: { available: number; capacity?: number; restorePerSecond?: number } = {
    available: throttle.left,
  };
  const { required, waitMs } = throttle;
  if (required !== undefined && required > model.capacity) out.capacity = required;
  if (
    required !== undefined && waitMs !== undefined && waitMs >= MIN_WAIT_FOR_RATE_MS &&
    required > throttle.left
  ) {
    out.restorePerSecond = (required - throttle.left) / (waitMs / 1000);
  }
  return out;
}
