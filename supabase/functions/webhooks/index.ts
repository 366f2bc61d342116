import { serveFunction } from "../../../functions-shared/http/serve.ts";
import { createWebhookHandler } from "../../../functions-shared/http/webhooks.ts";

serveFunction("webhooks", createWebhookHandler);
