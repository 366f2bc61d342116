// The proxy function's route: ANY /proxy/<connection_id>/<provider path>[?query], caller-
// authenticated like every function. The request (body at most 1 MiB → 413) is handed to the proxy
// job; the provider's answer comes back with its status, body and headers. Tether's own refusals
// (401 caller auth, 404 unknown connection, 409 reauth_required, 502) are JSON `{error, message}`
// with the header `tether-error: <code>`, so a caller can tell them from the provider's.
import type { Deps } from "../deps.ts";
import { JobError } from "../errors.ts";
import { runProxy } from "../jobs/proxy.ts";
import { MAX_BODY_BYTES, PayloadTooLarge, readRawBody } from "../webhooks/verify.ts";
import { authenticated, errorResponse, type Handler } from "./serve.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Statuses whose answer has no body (RFC 9110 §6.4.1). */
const NO_BODY = new Set([101, 204, 205, 304]);

export function createProxyHandler(deps: Deps): Handler {
  return authenticated(deps, async (req) => {
    try {
      const url = new URL(req.url);
      // The gateway forwards /proxy/<id>/…; tolerate a bare /<id>/… as well.
      const path = url.pathname.replace(/^\/proxy(?=\/)/, "");
      const [, id = "", ...rest] = path.split("/");
      if (!UUID.test(id)) {
        throw new JobError(
          "unknown_connection",
          "expected /proxy/<connection_id>/<path>, the connection's id a UUID",
        );
      }
      const headers: Record<string, string> = {};
      req.headers.forEach((value, name) => {
        headers[name.toLowerCase()] = value;
      });
      const body = req.method === "GET" || req.method === "HEAD" ? null : await readBody(req);
      const answer = await runProxy(deps, id.toLowerCase(), {
        method: req.method,
        path: `/${rest.join("/")}`,
        query: url.search.slice(1),
        headers,
        body: body === null || body.length === 0 ? null : body,
      });
      return new Response(NO_BODY.has(answer.status) ? null : answer.body, {
        status: answer.status,
        headers: answer.headers,
      });
    } catch (err) {
      const response = errorResponse(deps, "proxy", err);
      if (err instanceof JobError) response.headers.set("tether-error", err.code);
      return response;
    }
  });
}

async function readBody(req: Request): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return new Uint8Array(await readRawBody(req, MAX_BODY_BYTES));
  } catch (err) {
    if (err instanceof PayloadTooLarge) throw new JobError("payload_too_large", err.message);
    throw err;
  }
}
