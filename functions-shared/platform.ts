// Wires HTTP to jobs. A function's entry point is `serveJob(job)`: this module
// reads the configuration once at startup, authenticates every caller, parses
// the JSON body with the job's zod schema (400 naming the field), runs the job
// with its dependencies, and answers with the job's result as JSON. Jobs know
// nothing of HTTP; tests call them directly with their own `Deps`.
import { z } from "zod";
import { createCallerAuth, Unauthorized, unauthorizedResponse } from "./auth.ts";
import { connect, type Sql } from "./db/client.ts";
import { readEnv, type TetherEnv } from "./env.ts";
import { createLogger, type Logger } from "./log.ts";
import { formatIssues } from "./validation.ts";
import { TokenVault } from "./vault.ts";

/** Everything a job needs from the outside world, passed in so tests control it. */
export interface Deps {
  db: Sql;
  vault: TokenVault;
  fetch: typeof fetch;
  now: () => Date;
  env: TetherEnv;
  log: Logger;
}

export interface Job<I, O> {
  name: string;
  input: z.ZodType<I>;
  run(deps: Deps, input: I): Promise<O>;
}

/** Builds the dependencies of a deployed (or locally served) function. */
export async function createDeps(
  env: TetherEnv,
  opts: { name: string; log?: Logger },
): Promise<Deps> {
  return {
    db: connect(env.databaseUrl, { name: `tether-${opts.name}` }),
    vault: await TokenVault.fromKeyRing(env.tokenKeyRing),
    fetch: globalThis.fetch,
    now: () => new Date(),
    env,
    log: opts.log ?? createLogger(opts.name),
  };
}

/** Any thrown value as an Error that keeps its cause. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : "non-error thrown", { cause: value });
}

export function jsonError(status: number, error: string, message: string): Response {
  return Response.json({ error, message }, { status, headers: { "cache-control": "no-store" } });
}

export async function readJsonBody(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest("the request body must be JSON");
  }
}

export class BadRequest extends Error {
  override readonly name = "BadRequest";
}

/** An expected failure a job reports to its caller, with its HTTP status and a snake_case code. */
export class JobError extends Error {
  override readonly name = "JobError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The HTTP handler of a job: auth, body, run, answer. */
export function createJobHandler<I, O>(
  job: Job<I, O>,
  deps: Promise<Deps>,
): (req: Request) => Promise<Response> {
  const ready = deps.then((deps) => ({ deps, authenticate: createCallerAuth(deps.env.auth) }));
  ready.catch(() => {}); // reported to each caller below
  return async (req) => {
    let ctx;
    try {
      ctx = await ready;
    } catch (err) {
      // A startup error (missing key ring, bad env): every call says so.
      return jsonError(500, "misconfigured", coerceError(err).message);
    }
    if (req.method !== "POST") return jsonError(405, "method_not_allowed", "use POST");
    try {
      await ctx.authenticate(req);
    } catch (err) {
      if (err instanceof Unauthorized) return unauthorizedResponse(err);
      throw err;
    }
    let input: I;
    try {
      const parsed = job.input.safeParse(await readJsonBody(req));
      if (!parsed.success) {
        return jsonError(400, "invalid_body", formatIssues(parsed.error.issues));
      }
      input = parsed.data;
    } catch (err) {
      if (err instanceof BadRequest) return jsonError(400, "invalid_body", err.message);
      throw err;
    }
    try {
      return Response.json(await job.run(ctx.deps, input));
    } catch (err) {
      if (err instanceof JobError) return jsonError(err.status, err.code, err.message);
      const error = coerceError(err);
      ctx.deps.log.error(`${job.name} failed`, { error: error.message });
      return jsonError(500, "job_failed", error.message);
    }
  };
}

type Handler = (req: Request) => Promise<Response>;

/**
 * Boots a function: reads the configuration once at startup (so a bad key ring shows in the logs
 * at once) and serves the handler built on the dependencies it will have.
 */
export function serveFunction(name: string, makeHandler: (deps: Promise<Deps>) => Handler): void {
  const log = createLogger(name);
  const deps = (async () => {
    try {
      return await createDeps(readEnv((name) => Deno.env.get(name)), { name, log });
    } catch (err) {
      log.error("startup failed", { error: coerceError(err).message });
      throw err;
    }
  })();
  Deno.serve(makeHandler(deps));
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
      return jsonError(500, "misconfigured", coerceError(err).message);
    }
    return await ready(req);
  };
}

/** The whole of a function's entry point: `serveJob(refreshTokens)`. */
export function serveJob<I, O>(job: Job<I, O>): void {
  serveFunction(job.name, (deps) => createJobHandler(job, deps));
}
