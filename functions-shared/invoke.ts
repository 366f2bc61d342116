// Starting another invocation of one of the project's own functions, from inside a function: what a
// sync invocation asked for several uses to start the others (jobs/sync.ts, "fan-out").
//
// Supabase serves every function of a project at SUPABASE_URL + /functions/v1/<name>, SUPABASE_URL
// being a default secret of every function, "the API gateway for your Supabase project"
// (supabase.com/docs/guides/functions/secrets, "Default secrets"), and lets a function call another
// (or itself) with fetch(): "Recursive / Nested Function Calls"
// (supabase.com/docs/guides/functions/recursive-functions). Such calls are rate limited per request
// chain, "a budget of at least 5,000 requests per minute" (CHAIN_CALLS_PER_MINUTE), past which the
// fetch throws a RateLimitError: a sync call starts at most tether.sync_invocations_per_call() - 1
// (7) siblings, each tick's call its own chain, far below it.
//
// A start asks for an asynchronous answer (RFC 7240 `Prefer: respond-async`, as the SQL API's
// pg_net calls do: docs/architecture.md "Invocations"), so it returns as soon as the sibling has
// recorded its invocation, and carries the invoke key (TETHER_INVOKE_KEY), the narrowest key the
// job functions accept; nothing here logs or returns it.
import { INVOKE_KEY_HEADER } from "./auth.ts";
import type { TetherEnv } from "./env.ts";
import { coerceError } from "./errors.ts";

/**
 * Function-to-function calls one request chain may make a minute on Supabase, at least ("Recursive
 * / Nested Function Calls", "Rate limit budget"); the sync's fan-out stays far below it
 * (tests/scale_test.ts).
 */
export const CHAIN_CALLS_PER_MINUTE = 5_000;

/** How long a start may take: the sibling answers 202 in milliseconds; a cold start takes longer. */
export const START_TIMEOUT_MS = 10_000;

export interface FunctionInvoker {
  /**
   * Starts an invocation of the project's function `name` with a JSON body, asking for an
   * asynchronous answer. Resolves with the invocation id of its 202; rejects with an
   * InvocationNotStarted saying why (never with a credential) otherwise.
   */
  start(name: string, body: unknown): Promise<string>;
}

/** A start that did not end in a 202: the status and error code answered, or the network error. */
export class InvocationNotStarted extends Error {
  override readonly name = "InvocationNotStarted";
}

/**
 * The invoker of a function configured with `env`: SUPABASE_URL's functions (`functionsUrl`) called
 * with TETHER_INVOKE_KEY (`auth.invokeKey`). A start fails, saying which, when either is unset.
 */
export function functionInvoker(
  env: Pick<TetherEnv, "functionsUrl" | "auth">,
  fetch: typeof globalThis.fetch,
  timeoutMs = START_TIMEOUT_MS,
): FunctionInvoker {
  const { functionsUrl } = env;
  const { invokeKey } = env.auth;
  return {
    async start(name, body) {
      if (functionsUrl === undefined) {
        throw new InvocationNotStarted("SUPABASE_URL is not set: no functions URL to call");
      }
      if (invokeKey === undefined) {
        throw new InvocationNotStarted("TETHER_INVOKE_KEY is not set: no key to call with");
      }
      let res: Awaited<ReturnType<typeof fetch>>;
      try {
        res = await fetch(`${functionsUrl}/${name}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            [INVOKE_KEY_HEADER]: invokeKey,
            prefer: "respond-async",
          },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        // On Supabase a call past the chain's budget throws a RateLimitError: its name says so.
        const error = coerceError(err);
        throw new InvocationNotStarted(`${name}: ${error.name}: ${error.message}`);
      }
      const answer = await res.json().catch(() => ({})) as Record<string, unknown>;
      if (res.status !== 202 || typeof answer.invocation_id !== "string") {
        const code = answer.error ?? answer.code;
        throw new InvocationNotStarted(
          `${name} answered ${res.status}${typeof code === "string" ? ` ${code}` : ""}`,
        );
      }
      return answer.invocation_id;
    },
  };
}
