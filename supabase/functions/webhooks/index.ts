import { serveFunction } from "../../../functions-shared/http/serve.ts";
import { createWebhookHandler } from "../../../functions-shared/jobs/webhooks.ts";

serveFunction("webhooks", createWebhookHandler);
