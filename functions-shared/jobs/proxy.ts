// The authenticated proxy (issue #14): the user's own request, sent to the provider's API as one
// connection, paced by the connection's rate budget, with the same token rules as Tether's own
// calls (a valid token, one forced refresh after a 401) and the provider's answer returned as it
// is. Retried only where a retry cannot do a thing twice:
// - 401: refreshed once and sent once more (the provider refused it before acting);
// - 429: waited out (its Retry-After) and sent again, whatever the method (refused before acting);
// - 5xx, timeout, network: sent again only when the call is a read. A write (POST, PUT, PATCH,
//   DELETE, a GraphQL mutation) may have been carried out before the failure: its answer goes back
//   to the caller, who knows whether doing it twice is safe.
import { Deadline, type Deps } from "../deps.ts";
import { JobError } from "../errors.ts";
import {
  forward,
  isWrite,
  type ProxyAnswer,
  type ProxyCall,
  statedRetryAfterMs,
} from "../providers/proxy.ts";
import { adapterFor } from "../providers/registry.ts";
import { ProviderError } from "../providers/types.ts";
import { openConnection } from "./access.ts";
import { adapterContext, connectionRef } from "./tokens.ts";

/** Sends of one call at most: the first, one after a refresh, and retries of throttles and 5xx. */
export const MAX_PROXY_SENDS = 4;
/** The longest wait a retry may take; a provider asking for more gets its answer passed back. */
export const MAX_PROXY_WAIT_MS = 10_000;

export async function runProxy(
  deps: Deps,
  connectionId: string,
  call: ProxyCall,
): Promise<ProxyAnswer> {
  const opened = await openConnection(deps, connectionId);
  const connection = opened.connection;
  let credentials = opened.credentials;
  const adapter = adapterFor(connection.provider);
  const ref = connectionRef(connection);
  // The connection's pacer, which its syncs and backfills in this instance draw from too.
  const pacer = deps.pacers.for(
    connection.id,
    adapter.rateLimitFor?.(connection.config) ?? adapter.facts.rateLimit,
  );
  const ctx = adapterContext(deps);
  const write = isWrite(adapter, call);
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs);
  let refreshed = false;
  for (let send = 1;; send++) {
    const last = send >= MAX_PROXY_SENDS;
    await pacer.take(adapter.proxy.requestCost);
    let answer: ProxyAnswer;
    try {
      answer = await forward(ctx, adapter, ref, credentials, call);
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      const wait = 1000 * 2 ** (send - 1);
      if (write || last || deadline.exceededBy(wait)) {
        throw new JobError("provider_unavailable", err.message);
      }
      await deps.clock.sleep(wait);
      continue;
    }
    adapter.proxy.observe?.(pacer, new Headers(answer.headers));
    if (answer.status === 401 && !refreshed && !last) {
      refreshed = true;
      ({ credentials } = await openConnection(deps, connectionId, { force: true }));
      continue;
    }
    const throttled = answer.status === 429;
    if (!throttled && !(answer.status >= 500 && !write)) return answer;
    const wait = statedRetryAfterMs(answer, deps.now()) ??
      (throttled ? adapter.facts.defaultRetryAfterSeconds * 1000 : 1000 * 2 ** (send - 1));
    if (last || wait > MAX_PROXY_WAIT_MS || deadline.exceededBy(wait)) return answer;
    // The pacer holds the connection's other calls back for the wait, as a sync's throttle does.
    pacer.backOff(wait);
  }
}
