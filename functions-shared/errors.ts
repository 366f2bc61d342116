// The failures a job reports to its caller, as one closed set of codes, and the one table that
// turns a code into an HTTP status. Jobs throw `JobError(code, message)`; only functions-shared/
// http/ reads the table. Messages are safe to show: they never hold a token or a secret.

/** Every code a function can answer with, and its HTTP status. */
export const JOB_ERROR_STATUS = {
  // The request itself
  invalid_body: 400,
  invalid_query: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  // What it names
  unknown_connection: 404,
  unknown_backfill: 404,
  no_such_stream: 400,
  invalid_connection: 400,
  invalid_backfill: 400,
  backfill_overlaps: 409,
  credentials_rejected: 422,
  /** The connection needs a person: reconnect it (reauth_required) or enable it (disabled). */
  reauth_required: 409,
  connection_disabled: 409,
  // Tether or the provider
  provider_unavailable: 502,
  misconfigured: 500,
  receive_failed: 500,
  job_failed: 500,
} as const satisfies Record<string, number>;

export type JobErrorCode = keyof typeof JOB_ERROR_STATUS;

export function httpStatus(code: JobErrorCode): number {
  return JOB_ERROR_STATUS[code];
}

/** An expected failure a job reports to its caller: a code from the table and a plain message. */
export class JobError extends Error {
  override readonly name = "JobError";
  constructor(readonly code: JobErrorCode, message: string) {
    super(message);
  }
}

/** Any thrown value as an Error that keeps its cause. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : "non-error thrown", { cause: value });
}

/** The SQLSTATE (or postgres.js connection code) of a database error; undefined otherwise. */
export function pgErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A transaction lost to a concurrent one: deadlock_detected, serialization_failure. Safe to retry. */
export const CLASH_CODES: ReadonlySet<string> = new Set(["40P01", "40001"]);

/** A network-level failure to reach the database (postgres.js / Node codes), not a SQL error. */
const CONNECTION_CODE = /^(E[A-Z]+|CONNECT(ION)?_[A-Z_]+)$/;

/** The longest message a caller or a run record gets; the rest is cut (a bad argument echoed). */
export const MAX_MESSAGE_CHARS = 500;

/**
 * An unexpected error's message, safe to hand a caller: a database connection failure says so
 * without the host and port it tried ("connect ECONNREFUSED 10.0.0.5:5432"), and anything longer
 * than MAX_MESSAGE_CHARS is cut.
 */
export function safeMessage(err: unknown): string {
  const error = coerceError(err);
  const code = pgErrorCode(error);
  if (code !== undefined && CONNECTION_CODE.test(code)) {
    return `the database could not be reached (${code}); try again`;
  }
  const message = error.message;
  return message.length <= MAX_MESSAGE_CHARS
    ? message
    : `${message.slice(0, MAX_MESSAGE_CHARS)}… (${message.length} characters)`;
}

/** A failure that is neither the provider's nor the connection's: the database, or a bug. */
export function describeInternal(err: unknown): string {
  const error = coerceError(err);
  const code = pgErrorCode(error);
  const fromDatabase = error.name === "PostgresError" ||
    (code !== undefined && CONNECTION_CODE.test(code));
  return `${fromDatabase ? "database" : "internal error"}: ${safeMessage(error)}`;
}
