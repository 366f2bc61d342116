/**
 * Per-provider bookkeeping: accounts by external id and every token ever
 * issued, by value. Requests find their token (and so their account) with one
 * Map lookup; nothing scans accounts, so thousands of accounts stay cheap.
 */
import type { AccountSnapshot } from "./provider.ts";
import { randomToken } from "./tokens.ts";

export type TokenKind = "access" | "refresh";

export interface IssuedToken {
  readonly value: string;
  readonly kind: TokenKind;
  readonly externalId: string;
  readonly issuedAt: number;
  /** Natural expiry (epoch ms); null = never. */
  expiresAt: number | null;
  /** When rotation ends it (epoch ms; may lie ahead, e.g. QuickBooks' 24 h grace); null = not rotated away. */
  diesAt: number | null;
}

export interface BaseAccount {
  readonly externalId: string;
  revoked: boolean;
}

export interface TokenHit<A> {
  readonly token: IssuedToken;
  readonly account: A;
}

export class AccountBook<A extends BaseAccount> {
  readonly #accounts = new Map<string, A>();
  readonly #tokens = new Map<string, IssuedToken>();
  readonly #generateId: (seq: number) => string;
  #seq = 0;

  constructor(generateId: (seq: number) => string) {
    this.#generateId = generateId;
  }

  /** The requested external id if free, a fresh generated one if none was asked for, else undefined. */
  claimId(requested: string | undefined): string | undefined {
    if (requested !== undefined) return this.#accounts.has(requested) ? undefined : requested;
    let id: string;
    do id = this.#generateId(++this.#seq); while (this.#accounts.has(id));
    return id;
  }

  add(account: A): A {
    this.#accounts.set(account.externalId, account);
    return account;
  }

  get(externalId: string): A | undefined {
    return this.#accounts.get(externalId);
  }

  issue(
    externalId: string,
    kind: TokenKind,
    prefix: string,
    now: number,
    lifetimeSeconds: number | null,
  ): IssuedToken {
    const value = randomToken(prefix);
    const token: IssuedToken = {
      value,
      kind,
      externalId,
      issuedAt: now,
      expiresAt: lifetimeSeconds === null ? null : now + lifetimeSeconds * 1000,
      diesAt: null,
    };
    this.#tokens.set(value, token);
    return token;
  }

  /** Any token this book ever issued, live or dead (stats count attempts with dead tokens too). */
  find(value: string | undefined): TokenHit<A> | undefined {
    if (value === undefined) return undefined;
    const token = this.#tokens.get(value);
    const account = token && this.#accounts.get(token.externalId);
    return token && account ? { token, account } : undefined;
  }

  /** Kills every token of the account from now on; false when there is no such account. */
  revoke(externalId: string): boolean {
    const account = this.#accounts.get(externalId);
    if (account) account.revoked = true;
    return account !== undefined;
  }

  /** External id of the account any token (live or dead) was issued to. */
  ownerOf(value: string): string | undefined {
    return this.find(value)?.account.externalId;
  }

  /** The token if it is of `kind`, unexpired, not rotated away and its account not revoked. */
  live(value: string | undefined, kind: TokenKind, now: number): TokenHit<A> | undefined {
    const hit = this.find(value);
    if (!hit || hit.token.kind !== kind || hit.account.revoked) return undefined;
    return isLive(hit.token, now) ? hit : undefined;
  }
}

export function isLive(token: IssuedToken, now: number): boolean {
  return (token.expiresAt === null || now < token.expiresAt) &&
    (token.diesAt === null || now < token.diesAt);
}

/** Kills a token for good, whatever the clock does later. */
export function killNow(token: IssuedToken): void {
  token.diesAt = Number.NEGATIVE_INFINITY;
}

/** An account's newest tokens, for the control API (which shows fingerprints only). */
export function describeAccount(
  account: BaseAccount,
  refresh: IssuedToken | null,
  access: IssuedToken | null,
  refreshExpiresAt: number | null = refresh?.expiresAt ?? null,
): AccountSnapshot {
  return {
    refreshToken: refresh?.value ?? null,
    accessToken: access?.value ?? null,
    refreshExpiresAt,
    accessExpiresAt: access?.expiresAt ?? null,
    revoked: account.revoked,
  };
}
