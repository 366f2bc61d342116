// The HTTP frame of every function: startup, caller auth, body limits and parsing, and the one
// mapping from a job's result or JobError to a response. A function's entry point is
// `serveJob(job)` (or `serveFunction` for one with routes of its own); jobs never see a Request.
import {
  type Caller,
  type CallerAuthOptions,
  createCallerAuth,
  Unauthorized,
  unauthorizedResponse,
} from "../auth.ts";
import { createDeps, type Deps, type Job } from "../deps.ts";
import { readEnv } from "../env.ts";
import { coerceError, httpStatus, JobError, type JobErrorCode, safeMessage } from "../errors.ts";
import { createLogger } from "../log.ts";
import { startInvocation } from "../jobs/invocations.ts";
import { findNulCharacter, formatIssues } from "../validation.ts";
import { PayloadTooLarge, readRawBody } from "../webhooks/verify.ts";

export type Handler = (req: Request) => Promise<Response>;

export function jsonError(code: JobErrorCode, message: string): Response {
  return Response.json({ error: code, message }, {
    status: httpStatus(code),
    headers: { "cache-control": "no-store" },
  });
}

/** A job's expected failure as its response; anything else is logged and answered 500. */
export function errorResponse(deps: Deps, what: string, err: unknown): Response {
  if (err instanceof JobError) return jsonError(err.code, err.message);
  const error = coerceError(err);
  deps.log.error(`${what} failed`, { error: error.message });
  return jsonError("job_failed", safeMessage(error));
}

/**
 * The largest JSON body a job accepts. The biggest real one is `connect`'s: a few tokens (each at
 * most 8 KiB, providers/common.ts) and a config of a few URLs.
 */
export const MAX_JOB_BODY_BYTES = 64 * 1024;

/**
 * The body as JSON (`{}` when empty), read up to `max` bytes (413 beyond, before more is read);
 * JobError invalid_body when it is not JSON or holds a U+0000 Postgres could not store (naming
 * the field).
 */
export async function readJsonBody(req: Request, max = MAX_JOB_BODY_BYTES): Promise<unknown> {
  let raw: Uint8Array;
  try {
    raw = await readRawBody(req, max);
  } catch (err) {
    if (err instanceof PayloadTooLarge) throw new JobError("payload_too_large", err.message);
    throw err;
  }
  const text = new TextDecoder().decode(raw);
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JobError("invalid_body", "the request body must be JSON");
  }
  const nul = findNulCharacter(value);
  if (nul !== undefined) {
    throw new JobError(
      "invalid_body",
      `${nul === "" ? "the body" : `field "${nul}"`}: must not contain U+0000 (NUL) characters`,
    );
  }
  return value;
}

/** RFC 7240 `Prefer: respond-async`, which the SQL API's calls through pg_net send. */
function prefersAsync(req: Request): boolean {
  return /(^|[\s,])respond-async\s*(?:[,;]|$)/i.test(req.headers.get("prefer") ?? "");
}

/**
 * Keeps the instance alive for work done after the answer: `EdgeRuntime.waitUntil` on Supabase
 * (supabase.com/docs/guides/functions/background-tasks; the local function server provides it with
 * the platform's limits). Without it (a handler called in-process) the work still runs.
 */
export function waitUntil(work: Promise<unknown>): void {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil(p: Promise<unknown>): void } })
    .EdgeRuntime;
  runtime?.waitUntil(work);
}

/**
 * Answers with the work's result; or, when the caller prefers an asynchronous answer, with 202
 * and the id of a tether.invocations row at once, the work running after the answer.
 */
export async function answerWith(
  deps: Deps,
  req: Request,
  functionName: string,
  work: () => Promise<unknown>,
): Promise<Response> {
  if (!prefersAsync(req)) return Response.json(await work());
  const invocation = await startInvocation(deps, functionName, work);
  waitUntil(invocation.done);
  return Response.json({ accepted: true, invocation_id: invocation.id }, {
    status: 202,
    headers: { "preference-applied": "respond-async" },
  });
}

/**
 * Runs a job on a request's JSON body, parsed with the job's schema (400 naming the field). A call
 * that came with the invoke key may ask only what `viaInvokeKey` admits, when the job sets it.
 */
export async function runJobOn<I, O>(
  deps: Deps,
  job: Job<I, O>,
  req: Request,
  caller?: Caller,
): Promise<Response> {
  try {
    const body = await readJsonBody(req);
    if (
      caller?.via === "invoke_key" && job.viaInvokeKey && !job.viaInvokeKey.safeParse(body).success
    ) {
      return unauthorizedResponse(
        new Unauthorized(job.viaInvokeKeyRefusal ?? "not with the invoke key"),
      );
    }
    const parsed = job.input.safeParse(body);
    if (!parsed.success) return jsonError("invalid_body", formatIssues(parsed.error.issues));
    if (job.secretResult) {
      return Response.json(await job.run(deps, parsed.data), {
        headers: { "cache-control": "no-store" },
      });
    }
    return await answerWith(deps, req, job.name, () => job.run(deps, parsed.data));
  } catch (err) {
    return errorResponse(deps, job.name, err);
  }
}

/**
 * Wraps a handler in caller auth (secret key or service_role JWT; the invoke key too with
 * `acceptInvokeKey`, for what pg_cron reaches): a 401 with nothing done otherwise.
 */
export function authenticated(
  deps: Deps,
  handler: (req: Request, caller: Caller) => Promise<Response>,
  options: CallerAuthOptions = {},
): Handler {
  const authenticate = createCallerAuth(deps.env.auth, options);
  return async (req) => {
    let caller: Caller;
    try {
      caller = await authenticate(req);
    } catch (err) {
      if (err instanceof Unauthorized) return unauthorizedResponse(err);
      throw err;
    }
    return await handler(req, caller);
  };
}

/** POST only, authenticated, the body parsed for the job: the whole of most functions. */
export function createJobHandler<I, O>(
  job: Job<I, O>,
  deps: Deps,
  options: CallerAuthOptions = {},
): Handler {
  const run = authenticated(deps, (req, caller) => runJobOn(deps, job, req, caller), options);
  return async (req) => {
    if (req.method !== "POST") return jsonError("method_not_allowed", "use POST");
    return await run(req);
  };
}

/** A handler built once the dependencies are ready; a startup error answers every call with 500. */
export function whenReady(deps: Promise<Deps>, make: (deps: Deps) => Handler): Handler {
  const handler = deps.then(make);
  handler.catch(() => {}); // reported to each caller below
  return async (req) => {
    let ready: Handler;
    try {
      ready = await handler;
    } catch (err) {
      return jsonError("misconfigured", coerceError(err).message);
    }
    return await ready(req);
  };
}

/**
 * Boots a function: reads the configuration once at startup (so a bad key ring shows in the logs
 * at once) and serves the handler built on the dependencies it will have.
 */
export function serveFunction(name: string, make: (deps: Deps) => Handler): void {
  const log = createLogger(name);
  const deps = (async () => {
    try {
      return await createDeps(readEnv((name) => Deno.env.get(name)), { name, log });
    } catch (err) {
      log.error("startup failed", { error: coerceError(err).message });
      throw err;
    }
  })();
  Deno.serve(whenReady(deps, make));
}

/**
 * The whole of a function's entry point: `serveJob(refreshTokens)`. A job function is what pg_cron
 * reaches through the SQL API, so it accepts the invoke key; except a job whose result holds a
 * credential (`secretResult`): the invoke key sits in pg_net's queue, which every database role
 * can read, so such a job answers a secret key or a service_role JWT only.
 */
export function serveJob<I, O>(job: Job<I, O>): void {
  serveFunction(
    job.name,
    (deps) => createJobHandler(job, deps, { acceptInvokeKey: job.secretResult !== true }),
  );
}
