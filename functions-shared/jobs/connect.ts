// The connect job: validates a connection's credentials and config with the
// provider's own schema, proves they work (a first refresh, or a cheap
// authenticated call), then stores them encrypted and the connection as
// active. Reconnecting replaces the credentials and clears the error state.
// Nothing is stored when any step fails; the answer never holds a token.
import { z } from "zod";
import { lockConnection, recordRefreshSuccess, upsertConnection } from "../db/connections.ts";
import { writeCredentials } from "../db/credentials.ts";
import { insertRun } from "../db/runs.ts";
import type { Deps, Job } from "../deps.ts";
import { JobError } from "../errors.ts";
import { adapterFor } from "../providers/registry.ts";
import {
  type Credentials,
  mergeCredentials,
  ProviderError,
  type ProviderName,
  PROVIDERS,
  type TokenGrant,
} from "../providers/types.ts";
import { formatIssues, hasControlCharacter, NO_CONTROL_CHARACTERS } from "../validation.ts";
import { adapterContext } from "./tokens.ts";

/** Text shown and matched as given: no control characters (U+0000 cannot even be stored). */
const plainText = (max: number) =>
  z.string().trim().min(1).max(max).refine((v) => !hasControlCharacter(v), NO_CONTROL_CHARACTERS);

export const ConnectInput = z.strictObject({
  provider: z.enum(PROVIDERS),
  external_id: plainText(255),
  name: plainText(200),
  owner_id: z.uuid().optional(),
  credentials: z.record(z.string(), z.unknown()),
  config: z.record(z.string(), z.unknown()).default({}),
});
export type ConnectInput = z.infer<typeof ConnectInput>;

export interface ConnectResult {
  connection_id: string;
  provider: string;
  name: string;
  status: string;
  token_expires_at: string | null;
}

/** Validates one part of the body with the provider's schema; 400 naming `<part>.<field>`. */
function parsePart<S extends z.ZodType>(schema: S, value: unknown, part: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new JobError("invalid_body", formatIssues(parsed.error.issues, { prefix: part }));
  }
  return parsed.data;
}

export async function runConnect(deps: Deps, input: ConnectInput): Promise<ConnectResult> {
  const adapter = adapterFor(input.provider);
  const credentials = parsePart(
    adapter.credentialsSchema,
    input.credentials,
    "credentials",
  ) as Record<string, string>;
  const config = parsePart(adapter.configSchema, input.config, "config") as Record<
    string,
    unknown
  >;
  const started = deps.now();
  const ref = { id: "new", provider: input.provider, externalId: input.external_id, config };
  let grant;
  try {
    grant = await adapter.refresh(adapterContext(deps), ref, credentials);
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    if (err.reauthRequired || err.code === "unauthorized") {
      throw new JobError("credentials_rejected", err.message);
    }
    if (err.code === "misconfigured" || err.code === "bad_request") {
      throw new JobError("invalid_connection", err.message);
    }
    throw new JobError("provider_unavailable", `${err.message}; nothing was stored, try again`);
  }
  return await storeConnection(deps, {
    provider: input.provider,
    external_id: input.external_id,
    name: input.name,
    owner_id: input.owner_id ?? null,
    config,
    credentials: mergeCredentials(credentials, grant),
    grant,
    started,
    via: "connect",
  });
}

export interface VerifiedConnection {
  provider: ProviderName;
  external_id: string;
  name: string;
  owner_id: string | null;
  /** Already validated with the adapter's `configSchema`. */
  config: Record<string, unknown>;
  /** Everything to store, the grant's tokens included. */
  credentials: Credentials;
  /** The grant that proved the credentials (a first refresh, or an OAuth code exchange). */
  grant: TokenGrant;
  started: Date;
  /** Recorded in the run's details: "connect" or "oauth". */
  via: "connect" | "oauth";
}

/**
 * Stores a connection whose credentials were just proven: the row (active, error state cleared),
 * its credentials encrypted, the refresh it counts as, and a run record, in one transaction.
 */
export async function storeConnection(
  deps: Deps,
  c: VerifiedConnection,
): Promise<ConnectResult> {
  const { grant } = c;
  const row = await deps.db.begin(async (tx) => {
    const row = await upsertConnection(tx, {
      provider: c.provider,
      external_id: c.external_id,
      name: c.name,
      owner_id: c.owner_id,
      // What the grant states about the account (e.g. the scopes granted) joins the config.
      config: { ...c.config, ...grant.accountConfig },
    });
    await lockConnection(tx, row.id);
    await writeCredentials(tx, deps.vault, row.id, c.credentials, { replace: true });
    await recordRefreshSuccess(tx, row.id, "connect", {
      now: deps.now(),
      tokenExpiresAt: grant.accessTokenExpiresAt,
      refreshTokenExpiresAt: grant.refreshTokenExpiresAt,
      refreshTokenRotated: true,
    });
    await insertRun(tx, {
      connection_id: row.id,
      kind: "refresh",
      status: "succeeded",
      started_at: c.started,
      finished_at: deps.now(),
      details: c.via === "oauth"
        ? { connect: true, oauth: true }
        : { connect: true, rotated: grant.refreshTokenRotated },
    });
    return row;
  });
  deps.log.info("connected", { connection_id: row.id, provider: row.provider, via: c.via });
  return {
    connection_id: row.id,
    provider: row.provider,
    name: row.name,
    status: "active",
    token_expires_at: grant.accessTokenExpiresAt?.toISOString() ?? null,
  };
}

export const connect: Job<ConnectInput, ConnectResult> = {
  name: "connect",
  input: ConnectInput,
  run: runConnect,
};
