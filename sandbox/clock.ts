/**
 * The sandbox's notion of "now".
 *
 * It starts at real time and keeps ticking with it; tests move it with
 * `POST /_sandbox/clock`. Every lifetime, idle period and expiry in the sandbox
 * (and Lightspeed's absolute `expires`) is judged on this clock, never on
 * `Date.now()` directly.
 */
export class SandboxClock {
  #offsetMs = 0;
  readonly #realNow: () => number;

  constructor(realNow: () => number = Date.now) {
    this.#realNow = realNow;
  }

  /** Milliseconds since the epoch, as the providers see it. */
  now(): number {
    return this.#realNow() + this.#offsetMs;
  }

  /** Moves the clock by `seconds` (may be negative) and returns the new now. */
  advance(seconds: number): number {
    this.#offsetMs += seconds * 1000;
    return this.now();
  }

  /** Jumps to `epochMs`; the clock keeps ticking from there. */
  set(epochMs: number): number {
    this.#offsetMs = epochMs - this.#realNow();
    return this.now();
  }
}

/** ISO-8601 for a sandbox instant, or null for "never". */
export function isoOrNull(epochMs: number | null): string | null {
  return epochMs === null || !Number.isFinite(epochMs) ? null : new Date(epochMs).toISOString();
}

/** Whole seconds from `now` until `epochMs`, never negative. */
export function secondsUntil(epochMs: number, now: number): number {
  return Math.max(0, Math.floor((epochMs - now) / 1000));
}
