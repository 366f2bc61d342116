// The webhooks function's HTTP routes: POST /webhooks/<provider>[/…] (the raw body, at most
// 1 MiB → 413, handed to the receive job, which records the events and leaves their processing to
// run after the answer) and POST /webhooks/_sweep (caller-authenticated, the invoke key included:
// pg_cron reaches it).
import type { Deps } from "../deps.ts";
import {
  notFound,
  receiveWebhook,
  sweepInput,
  sweepWebhookEvents,
  webhooksOf,
} from "../jobs/webhooks.ts";
import { MAX_BODY_BYTES, PayloadTooLarge, readRawBody } from "../webhooks/verify.ts";
import {
  answerWith,
  authenticated,
  errorResponse,
  type Handler,
  jsonError,
  readJsonBody,
  waitUntil,
} from "./serve.ts";
import { formatIssues } from "../validation.ts";

export function createWebhookHandler(deps: Deps): Handler {
  const sweep = authenticated(deps, async (req) => {
    try {
      const parsed = sweepInput.safeParse(await readJsonBody(req));
      if (!parsed.success) return jsonError("invalid_body", formatIssues(parsed.error.issues));
      const force = parsed.data.force === true;
      return await answerWith(deps, req, "webhooks", () => sweepWebhookEvents(deps, { force }));
    } catch (err) {
      return errorResponse(deps, "webhook sweep", err);
    }
  }, { acceptInvokeKey: true }); // process_webhook_events() calls it through pg_net
  return async (req) => {
    if (req.method !== "POST") return jsonError("method_not_allowed", "use POST");
    const parts = new URL(req.url).pathname.split("/").filter((p) => p !== "");
    // The gateway forwards /webhooks/<provider>/…; tolerate a bare /<provider>/… as well.
    if (parts[0] === "webhooks") parts.shift();
    const [head, ...rest] = parts;
    if (head === "_sweep") return await sweep(req);
    if (!webhooksOf(head)) {
      return errorResponse(deps, "webhook receive", notFound());
    }
    let raw: Uint8Array;
    try {
      raw = await readRawBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof PayloadTooLarge) return jsonError("payload_too_large", err.message);
      throw err;
    }
    const headers: Record<string, string> = {};
    req.headers.forEach((value, name) => {
      headers[name.toLowerCase()] = value;
    });
    try {
      return Response.json(
        await receiveWebhook(deps, { provider: head, headers, raw, path: rest }, waitUntil),
      );
    } catch (err) {
      return errorResponse(deps, "webhook receive", err);
    }
  };
}
