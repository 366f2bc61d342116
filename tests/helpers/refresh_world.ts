// One refresh test's world, shared by the refresh, tokens, connect and plaintext-audit tests: its
// own database, its own provider sandbox, a job clock that moves with the sandbox's, and every
// token seen so far (for the plaintext search and for messages that must never show a token).
import assert from "node:assert/strict";
import type { z } from "zod";
import { startSandbox } from "../../sandbox/server.ts";
import { type ConnectionRow, getConnection } from "../../functions-shared/db/connections.ts";
import { readCredentials } from "../../functions-shared/db/credentials.ts";
import { runConnect } from "../../functions-shared/jobs/connect.ts";
import {
  RefreshTokensInput,
  type RefreshTokensResult,
  runRefreshTokens,
} from "../../functions-shared/jobs/refresh_tokens.ts";
import type { Deps } from "../../functions-shared/deps.ts";
import type { ProviderName } from "../../functions-shared/providers/types.ts";
import { createTestDatabase, fixedClock, type TestDatabase, testDeps } from "./stack.ts";
import { fingerprint, type SandboxAccount, SandboxControl } from "./sandbox.ts";

export const HOUR = 3600;
export const DAY = 86_400;

// ---------------------------------------------------------------------------------------------
// One test's world: its own database, its own sandbox, a job clock that moves with the sandbox's

export interface Conn {
  id: string;
  provider: ProviderName;
  externalId: string;
}

export interface World {
  db: TestDatabase;
  sandbox: SandboxControl;
  clock: ReturnType<typeof fixedClock>;
  deps: Deps & { logLines: string[] };
  /** Every token the sandbox gave us and every token Tether stored, for the plaintext search. */
  tokens: Set<string>;
}

export async function withWorld(
  fn: (w: World) => Promise<void>,
  opts: { realClock?: boolean } = {},
): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    const clock = fixedClock();
    const deps = await testDeps(db, opts.realClock ? {} : { now: clock.now });
    await fn({ db, sandbox: new SandboxControl(running.url), clock, deps, tokens: new Set() });
  } finally {
    await running.close();
    await db.drop();
  }
}

/** Moves the sandbox's clock and the jobs' clock together. */
export async function advance(w: World, seconds: number): Promise<void> {
  w.clock.advance(seconds);
  await w.sandbox.call("POST", "/clock", { advance_seconds: seconds });
}

/** A new sandbox account; its tokens are remembered for the plaintext search and for hideTokens. */
export async function newAccount(
  w: World,
  provider: ProviderName,
  kind?: "legacy" | "expiring",
): Promise<SandboxAccount> {
  const account = await w.sandbox.account(provider, kind);
  for (const value of Object.values(account.credentials)) w.tokens.add(value);
  return account;
}

/** A sandbox account registered with Tether through `connect` (which proves it with a refresh). */
export async function connectNew(
  w: World,
  provider: ProviderName,
  opts: { kind?: "legacy" | "expiring"; deps?: Deps } = {},
): Promise<Conn> {
  const account = await newAccount(w, provider, opts.kind);
  const result = await runConnect(opts.deps ?? w.deps, {
    provider,
    external_id: account.external_id,
    name: `${provider} ${account.external_id}`,
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  const conn = { id: result.connection_id, provider, externalId: account.external_id };
  await storedCredentials(w, conn);
  return conn;
}

/** Decrypted credentials as Tether stores them (and remembered for the plaintext search). */
export async function storedCredentials(w: World, conn: Conn): Promise<Record<string, string>> {
  const { values } = await readCredentials(w.db.sql, w.deps.vault, conn.id);
  for (const value of Object.values(values)) w.tokens.add(value);
  return values;
}

export async function row(w: World, conn: Conn): Promise<ConnectionRow> {
  const found = await getConnection(w.db.sql, conn.id);
  assert.ok(found, `connection ${conn.id} exists`);
  return found;
}

/** Due now on the jobs' clock: the access token expires at this instant. */
export async function makeDue(w: World, conns?: Conn[]): Promise<void> {
  const now = w.clock.now();
  if (conns === undefined) {
    await w.db.sql`update tether.connections set token_expires_at = ${now}`;
  } else {
    for (const conn of conns) {
      await w.db.sql`update tether.connections set token_expires_at = ${now} where id = ${conn.id}`;
    }
  }
}

export async function runCount(
  w: World,
  conn: Conn,
  status: "succeeded" | "failed" | "skipped",
): Promise<number> {
  const [r] = await w.db.sql<{ n: number }[]>`
    select count(*)::int as n from tether.runs
     where connection_id = ${conn.id} and kind = 'refresh' and status = ${status}`;
  return r!.n;
}

/** Tether holds exactly the sandbox's live tokens for this account (compared by fingerprint). */
export async function assertHoldsLiveTokens(w: World, conn: Conn): Promise<void> {
  const stored = await storedCredentials(w, conn);
  const live = await w.sandbox.inspect(conn.provider, conn.externalId);
  const storedRefresh = stored.refresh_token === undefined
    ? null
    : await fingerprint(stored.refresh_token);
  assert.equal(
    storedRefresh,
    live.live_refresh_token_fingerprint,
    `${conn.provider}/${conn.externalId}: stored refresh token is the sandbox's live one`,
  );
  const access = stored.access_token ?? stored.api_token;
  assert.ok(access !== undefined, `${conn.provider}: an access token is stored`);
  assert.equal(
    await fingerprint(access),
    live.live_access_token_fingerprint,
    `${conn.provider}/${conn.externalId}: stored access token is the sandbox's newest one`,
  );
}

/** One invocation of the refresh-tokens job, its input parsed as the function parses it. */
export function sweep(deps: Deps, input: z.input<typeof RefreshTokensInput> = {}) {
  return runRefreshTokens(deps, RefreshTokensInput.parse(input));
}

/** Text for an assertion message: any token we know of is replaced, so failures never show one. */
export function hideTokens(w: World, text: string): string {
  let out = text;
  for (const token of w.tokens) out = out.split(token).join("[token]");
  return out;
}

export function noResult(): RefreshTokensResult {
  return { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0, duration_ms: 0 };
}

export function outcomes(r: RefreshTokensResult): Omit<RefreshTokensResult, "duration_ms"> {
  const { duration_ms: _ignored, ...rest } = r;
  return rest;
}

export function sumResults(
  results: RefreshTokensResult[],
): Omit<RefreshTokensResult, "duration_ms"> {
  const total = noResult();
  for (const r of results) {
    total.refreshed += r.refreshed;
    total.failed += r.failed;
    total.reauth_required += r.reauth_required;
    total.skipped += r.skipped;
  }
  return outcomes(total);
}

export const NOTHING = outcomes(noResult());
export const ONE_REFRESHED = { ...NOTHING, refreshed: 1 };
export const ONE_FAILED = { ...NOTHING, failed: 1 };
