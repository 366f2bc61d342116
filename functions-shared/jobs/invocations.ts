// Work done after the caller has its answer (docs/architecture.md "Invocations"): the invocation is
// recorded before the answer, so the 202 can carry its id, and its outcome is recorded when the
// work ends: the job's result, or its error.
import { closeInvocation, openInvocation } from "../db/invocations.ts";
import type { Deps } from "../deps.ts";
import { coerceError } from "../errors.ts";

export interface Invocation {
  id: string;
  /** Settles when the work and the record of its outcome are done; never rejects. */
  done: Promise<void>;
}

export async function startInvocation(
  deps: Deps,
  functionName: string,
  work: () => Promise<unknown>,
): Promise<Invocation> {
  const id = await openInvocation(deps.db, functionName, deps.now());
  const done = (async () => {
    let failure: string | undefined;
    let result: unknown;
    try {
      result = await work();
    } catch (err) {
      failure = coerceError(err).message;
    }
    try {
      if (failure === undefined) {
        await closeInvocation(deps.db, id, { status: "succeeded", finishedAt: deps.now(), result });
        deps.log.info("invocation succeeded", { invocation: id });
      } else {
        deps.log.error("invocation failed", { invocation: id, error: failure });
        await closeInvocation(deps.db, id, {
          status: "failed",
          finishedAt: deps.now(),
          error: failure,
        });
      }
    } catch (err) {
      deps.log.error("the invocation's outcome could not be recorded", {
        invocation: id,
        error: coerceError(err).message,
      });
    }
  })();
  return { id, done };
}
