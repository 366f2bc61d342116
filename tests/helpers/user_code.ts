// The world of the tests of Tether from the user's own code (issue #14): a refresh world (its own
// database and sandbox), the `tokens` and `proxy` functions served against it, and the client a
// user's function would build.
import { createTetherClient, type TetherClient } from "../../client/mod.ts";
import { serveFunctionsFor } from "./stack.ts";
import { withWorld, type World } from "./refresh_world.ts";

export interface UserCodeWorld extends World {
  tether: TetherClient;
  functionsUrl: string;
  secretKey: string;
  /** The key the SQL API's calls through pg_net carry (which must not open tokens or proxy). */
  invokeKey: string;
  /** What the served functions wrote to their output. */
  functionLog: string[];
}

export async function withUserCodeWorld(
  fn: (w: UserCodeWorld) => Promise<void>,
  names = ["tokens", "proxy"],
): Promise<void> {
  await withWorld(async (w) => {
    const functions = await serveFunctionsFor(w.db, names);
    try {
      const tether = createTetherClient({
        url: functions.functionsUrl,
        serviceKey: functions.secretKey,
      });
      await fn({
        ...w,
        tether,
        functionsUrl: functions.functionsUrl,
        secretKey: functions.secretKey,
        invokeKey: functions.invokeKey,
        functionLog: functions.logLines,
      });
    } finally {
      await functions.stop();
    }
  }, { realClock: true });
}

/** Any token of the world found in `text` (reported by position, never by value). */
export function leakedTokens(w: World, text: string): number[] {
  return [...w.tokens].flatMap((token, i) => text.includes(token) ? [i] : []);
}
