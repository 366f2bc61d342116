import { createWebhookHandler } from "../../../functions-shared/jobs/webhooks.ts";
import { serveFunction, whenReady } from "../../../functions-shared/platform.ts";

serveFunction("webhooks", (deps) => whenReady(deps, createWebhookHandler));
