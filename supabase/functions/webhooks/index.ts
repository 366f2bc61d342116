import { readEnv } from "../../../functions-shared/env.ts";
import { serveWebhooks } from "../../../functions-shared/jobs/webhooks.ts";
import { createLogger } from "../../../functions-shared/log.ts";
import { createDeps } from "../../../functions-shared/platform.ts";

const log = createLogger("webhooks");
serveWebhooks(
  () => createDeps(readEnv((name) => Deno.env.get(name)), { name: "webhooks", log }),
  log,
);
