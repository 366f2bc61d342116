// What to do about an error, by its class: the README's "Troubleshooting" table (per error class),
// kept here once for the console (and any other reader of last_error). `error` and `hint` are the
// first and last cells of the README row, word for word; tests/console_hints_test.ts fails when
// the two drift apart.

export interface ErrorHint {
  /** How the error's message reads (a message of this class matches it). */
  match: RegExp;
  /** The README row's first cell. */
  error: string;
  /** The README row's last cell: what to do. */
  hint: string;
}

export const ERROR_HINTS: readonly ErrorHint[] = [
  {
    match: /rejected the refresh token|invalid_grant/,
    error: "`… rejected the refresh token` (`invalid_grant`)",
    hint: "reconnect the account",
  },
  {
    match: /rejected the access token/,
    error: "`… rejected the access token` (`unauthorized`)",
    hint: "check the app's scopes; reconnect",
  },
  {
    match: /rejected the app credentials/,
    error: "`… rejected the app credentials` (`misconfigured`)",
    hint: "fix `<PROVIDER>_CLIENT_ID` / `_CLIENT_SECRET` with `supabase secrets set`",
  },
  {
    match: /app credentials are not set/,
    error: "`… app credentials are not set`",
    hint: "`supabase secrets set <PROVIDER>_CLIENT_ID=… <PROVIDER>_CLIENT_SECRET=…`",
  },
  {
    match: /is rate limiting|is throttling/,
    error: "`… is rate limiting` / `is throttling` (`rate_limited`)",
    hint: "nothing: waited out and retried; the stream backs off if it persists",
  },
  {
    match: /failed with HTTP 5\d\d|did not answer|could not be reached/,
    error: "`… failed with HTTP 5xx`, `did not answer`, `could not be reached`",
    hint: "nothing: retried with backoff",
  },
  {
    match: /response: field "/,
    error: '`… response: field "…": …` (`bad_response`)',
    hint:
      "nothing was stored from it and the cursor did not move; report the field if it persists (the provider changed)",
  },
  {
    match: /^database: /,
    error: "`database: …`",
    hint: "nothing: the next run resumes from the last checkpoint",
  },
  {
    match: /^interrupted: /,
    error: "`interrupted: …`",
    hint: "nothing: the next run resumed from the checkpoint",
  },
  {
    match: /Tether is not configured: Vault has no/,
    error: "`Tether is not configured: Vault has no …`",
    hint:
      "`npm run deploy`, or the two `vault.create_secret` calls the error's hint gives (see Deploy)",
  },
  {
    match: /lacks the read_all_orders scope/,
    error: "`shopify: the connection lacks the read_all_orders scope …`",
    hint:
      "get `read_all_orders` granted (Shopify approves it for public apps) and reconnect, or start the range later",
  },
  {
    match: /stored credentials cannot be decrypted/,
    error: '`stored credentials cannot be decrypted: … key "k2" …` (`reauth_required`)',
    hint:
      "add that key to the ring (then `update tether.connections set status = 'active' where id = …`), or reconnect",
  },
  {
    match: /another worker holds this stream until/,
    error: "sync `skipped`: `another worker holds this stream until …`",
    hint: "nothing: try again after the time given",
  },
];

/** The README's advice for an error message, or undefined when no class matches it. */
export function hintFor(message: string | null | undefined): string | undefined {
  if (!message) return undefined;
  return ERROR_HINTS.find((h) => h.match.test(message))?.hint;
}
