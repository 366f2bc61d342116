// The `console` function: the web console's page (static HTML, CSS and JS shipped with the
// function, supabase/config.toml `static_files`) and the JSON API behind it.
//
//   GET  /console/                              the page (index.html, console.css, console.js)
//   GET  /console/api/config                    what the page needs before sign-in (no auth)
//   POST /console/api/local-sign-in             local stack only: a demo user's JWT
//   GET  /console/api/me                        who the bearer is
//   GET  /console/api/connections               the connections the caller may see, with health
//   GET  /console/api/connections/<id>          one of them: runs, webhook events, backfills,
//                                               failures with the README's hint per error class
//   POST /console/api/connections               connect a token-based account (the connect job)
//   POST /console/api/oauth/<provider>/start    {authorize_url} of the OAuth flow (connect's own)
//   POST /console/api/connections/<id>/backfills   public.start_backfill()
//   POST /console/api/backfills/<id>/cancel     public.cancel_backfill()
//   POST /console/api/connections/<id>/disconnect  public.disconnect_connection()
//
// Who: a signed-in Supabase Auth user (a JWT with role `authenticated`) reads as that user under
// RLS (db/console.ts) and acts only on what those reads show; an operator (secret key or
// service_role JWT) sees and acts on everything. The invoke key is refused. Actions go through
// the same SQL API and jobs as the CLI, run with the function's own rights once the caller's
// right to the connection is established by a read under RLS.
//
// CSRF: the API takes its credential from the Authorization header only (the page keeps the
// session in sessionStorage, never in a cookie) and takes bodies as application/json only, so a
// page of another origin can neither send a credential the browser adds by itself nor a simple
// cross-origin form; no CORS header is sent, so it cannot read an answer either.
import { type JWTPayload, SignJWT } from "jose";
import { z } from "zod";
import type { Caller } from "../auth.ts";
import { DEMO_USERS } from "../console/demo_users.ts";
import { hintFor } from "../console/hints.ts";
import {
  asViewer,
  cancelBackfillSql,
  connectionActivity,
  disconnectSql,
  listConnections,
  ownerOfAccount,
  startBackfillSql,
  type Viewer,
  visibleBackfill,
  visibleConnection,
} from "../db/console.ts";
import type { Deps } from "../deps.ts";
import { JobError, pgErrorCode } from "../errors.ts";
import { BACKFILL_REFUSALS, ByRange } from "../jobs/backfill.ts";
import { ConnectInput, runConnect } from "../jobs/connect.ts";
import { isOAuthProvider, OAUTH_PROVIDERS, providerFacts } from "../providers/registry.ts";
import { PROVIDERS, STREAMS } from "../providers/types.ts";
import { providersWith } from "../jobs/sync.ts";
import { formatIssues } from "../validation.ts";
import { startOAuth } from "./connect.ts";
import { authenticated, errorResponse, jsonError, readJsonBody } from "./serve.ts";

/** What the console needs besides Deps, read from the environment by the entry point. */
export interface ConsoleSettings {
  /** SUPABASE_URL: where the page signs in with Supabase Auth (and its CSP's connect-src). */
  supabaseUrl?: string;
  /** SUPABASE_ANON_KEY (or a publishable key): what the page signs in with. Public by design. */
  anonKey?: string;
  /**
   * TETHER_CONSOLE_LOCAL_SIGN_IN=1 and a loopback SUPABASE_URL: the demo sign-in of the local
   * stack, which has no Supabase Auth. Never both on a deployed project.
   */
  localSignIn: boolean;
}

export function consoleSettings(get: (name: string) => string | undefined): ConsoleSettings {
  const supabaseUrl = get("SUPABASE_URL")?.trim() || undefined;
  const anonKey = get("SUPABASE_ANON_KEY")?.trim() || get("SUPABASE_PUBLISHABLE_KEY")?.trim() ||
    undefined;
  let loopback = false;
  try {
    loopback = supabaseUrl !== undefined &&
      ["127.0.0.1", "localhost", "[::1]"].includes(new URL(supabaseUrl).hostname);
  } catch { /* not a URL: no local sign-in */ }
  return {
    supabaseUrl,
    anonKey,
    localSignIn: get("TETHER_CONSOLE_LOCAL_SIGN_IN") === "1" && loopback,
  };
}

/** The page's files, read once: name → body and content type. */
export type StaticFiles = Map<string, { body: Uint8Array<ArrayBuffer>; type: string }>;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
};

/** Reads the page's files from `dir` (supabase/functions/console/static/). */
export async function loadStaticFiles(dir: URL): Promise<StaticFiles> {
  const files: StaticFiles = new Map();
  for (const name of ["index.html", "console.css", "console.js"]) {
    const ext = name.split(".").pop()!;
    files.set(name, { body: await Deno.readFile(new URL(name, dir)), type: TYPES[ext]! });
  }
  return files;
}

const SESSION_SECONDS = 3600;
const UUID = z.uuid();
const PREFIX = /^(?:\/functions\/v1)?\/console(?=\/|$)/;

/** Strict: the page's own scripts and styles only; the API and Supabase Auth to talk to. */
function contentSecurityPolicy(settings: ConsoleSettings): string {
  const auth = settings.supabaseUrl ? ` ${new URL(settings.supabaseUrl).origin}` : "";
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src 'self'${auth}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function answer(data: unknown, status = 200): Response {
  return Response.json(data, { status, headers: { "cache-control": "no-store" } });
}

function viewerOf(caller: Caller): Viewer {
  if (caller.via === "user") {
    return {
      kind: "user",
      userId: caller.userId,
      claims: caller.claims as Record<string, unknown>,
    };
  }
  return { kind: "operator" };
}

/** Parses a JSON body with `schema`; 415 unless it is sent as application/json. */
async function body<S extends z.ZodType>(req: Request, schema: S): Promise<z.output<S>> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new JobError("invalid_body", "send the body as application/json");
  }
  const parsed = schema.safeParse(await readJsonBody(req));
  if (!parsed.success) throw new JobError("invalid_body", formatIssues(parsed.error.issues));
  return parsed.data;
}

const TokenConnect = ConnectInput.omit({ owner_id: true });
const OAuthStart = z.strictObject({
  name: z.string().trim().min(1).max(200).optional(),
  /** Shopify: the shop's myshopify.com domain. */
  shop: z.string().trim().max(255).optional(),
  /** Reconnect: the connection whose account and name the flow starts with. */
  connection_id: z.uuid().optional(),
});
const BackfillStart = ByRange.omit({ connection_id: true });
const Disconnect = z.strictObject({
  delete_records: z.boolean().default(false),
  revoke: z.boolean().default(true),
});
const LocalSignIn = z.strictObject({ user: z.enum(["demo", "other", "operator"]) });

export function createConsoleHandler(
  deps: Deps,
  settings: ConsoleSettings,
  files: Promise<StaticFiles>,
): (req: Request) => Promise<Response> {
  const csp = contentSecurityPolicy(settings);
  const api = authenticated(deps, (req, caller) => route(req, caller), { acceptUsers: true });

  async function page(name: string): Promise<Response> {
    const file = (await files).get(name);
    if (!file) return jsonError("not_found", "no such page");
    return new Response(file.body, {
      headers: {
        "content-type": file.type,
        "cache-control": "no-cache",
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      },
    });
  }

  /** Under RLS for a user: the connection, or a 404 that says nothing of other owners'. */
  async function connectionFor(viewer: Viewer, id: string) {
    if (!UUID.safeParse(id).success) throw new JobError("unknown_connection", "no such connection");
    const row = await asViewer(deps.db, viewer, (tx) => visibleConnection(tx, id));
    if (!row) throw new JobError("unknown_connection", "no such connection");
    return row;
  }

  async function route(req: Request, caller: Caller): Promise<Response> {
    const viewer = viewerOf(caller);
    const path = new URL(req.url).pathname.replace(PREFIX, "").replace(/\/+$/, "");
    const parts = path.split("/").slice(2); // "", "api", …
    const [a, b, c] = parts;
    const get = req.method === "GET";
    const post = req.method === "POST";
    try {
      if (get && a === "me" && !b) {
        return answer(
          viewer.kind === "user"
            ? {
              kind: "user",
              user_id: viewer.userId,
              email: caller.via === "user" ? caller.claims.email ?? null : null,
            }
            : { kind: "operator" },
        );
      }
      if (a === "connections" && !b) {
        if (get) {
          const rows = await asViewer(deps.db, viewer, (tx) => listConnections(tx));
          return answer({ connections: rows.map(withHint) });
        }
        if (post) return answer(await connectToken(viewer, await body(req, TokenConnect)), 201);
      }
      if (a === "connections" && b && !c && get) {
        const connection = await connectionFor(viewer, b);
        const activity = await asViewer(deps.db, viewer, (tx) => connectionActivity(tx, b));
        return answer({
          connection: withHint(connection),
          ...activity,
          errors: activity.errors.map((r) => ({ ...r, hint: hintFor(r.error) ?? null })),
        });
      }
      if (a === "connections" && b && c === "backfills" && post) {
        await connectionFor(viewer, b);
        const input = await body(req, BackfillStart);
        try {
          const id = await startBackfillSql(deps.db, { connection_id: b, ...input });
          return answer({ backfill_id: id }, 201);
        } catch (err) {
          throw sqlRefusal(err, BACKFILL_REFUSALS);
        }
      }
      if (a === "connections" && b && c === "disconnect" && post) {
        await connectionFor(viewer, b);
        const input = await body(req, Disconnect);
        const requestId = await disconnectSql(deps.db, { connection_id: b, ...input });
        return answer({ request_id: requestId }, 202);
      }
      if (a === "backfills" && b && c === "cancel" && post) {
        const visible = UUID.safeParse(b).success &&
          await asViewer(deps.db, viewer, (tx) => visibleBackfill(tx, b));
        if (!visible) throw new JobError("unknown_backfill", "no such backfill");
        return answer({ backfill_id: b, status: await cancelBackfillSql(deps.db, b) });
      }
      if (a === "oauth" && b && c === "start" && post) {
        return await oauthStart(viewer, b, await body(req, OAuthStart));
      }
      return jsonError("not_found", "no such console route");
    } catch (err) {
      return errorResponse(deps, "console", err);
    }
  }

  /** The connect job for a token-based account; a user's becomes theirs, never another's. */
  async function connectToken(viewer: Viewer, input: z.infer<typeof TokenConnect>) {
    if (viewer.kind === "user") {
      const existing = await ownerOfAccount(deps.db, input.provider, input.external_id);
      if (existing && existing.owner_id !== viewer.userId) {
        throw new JobError(
          "invalid_connection",
          "this account is connected by another owner: ask them, or an operator",
        );
      }
    }
    return await runConnect(deps, {
      ...input,
      ...(viewer.kind === "user" ? { owner_id: viewer.userId } : {}),
    });
  }

  /** connect's own OAuth start, with the user as owner; a reconnect starts from the connection. */
  async function oauthStart(
    viewer: Viewer,
    provider: string,
    input: z.infer<typeof OAuthStart>,
  ): Promise<Response> {
    if (!isOAuthProvider(provider)) {
      throw new JobError("not_found", `OAuth is for ${OAUTH_PROVIDERS.join(", ")}`);
    }
    const query = new URLSearchParams();
    let name = input.name;
    let shop = input.shop;
    let owner = viewer.kind === "user" ? viewer.userId : undefined;
    if (input.connection_id) {
      const row = await connectionFor(viewer, input.connection_id);
      if (row.provider !== provider) {
        throw new JobError("invalid_body", `connection_id: a ${row.provider} connection`);
      }
      name ??= row.name;
      if (provider === "shopify") shop ??= row.external_id;
      owner ??= row.owner_id ?? undefined;
    }
    if (owner) query.set("owner_id", owner);
    if (name) query.set("name", name);
    if (shop) query.set("shop", shop);
    const res = await startOAuth(deps, provider, query);
    const data = await res.json() as { authorize_url?: string; error?: string; message?: string };
    if (!data.authorize_url) return answer(data, res.status);
    return answer({ authorize_url: data.authorize_url });
  }

  async function localSignIn(req: Request): Promise<Response> {
    const secret = deps.env.auth.jwtSecret;
    if (!settings.localSignIn || !secret) {
      return jsonError("not_found", "local sign-in is only on the local stack");
    }
    try {
      const { user } = await body(req, LocalSignIn);
      const now = Math.floor(deps.now().getTime() / 1000);
      const claims: JWTPayload = user === "operator" ? { role: "service_role" } : {
        role: "authenticated",
        aud: "authenticated",
        sub: DEMO_USERS[user].id,
        email: DEMO_USERS[user].email,
      };
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt(now)
        .setExpirationTime(now + SESSION_SECONDS)
        .sign(new TextEncoder().encode(secret));
      return answer({ access_token: token, expires_in: SESSION_SECONDS });
    } catch (err) {
      return errorResponse(deps, "console", err);
    }
  }

  return async (req) => {
    const url = new URL(req.url);
    if (!PREFIX.test(url.pathname)) return jsonError("not_found", "no such route");
    const path = url.pathname.replace(PREFIX, "");
    if (req.method === "GET" && (path === "" || path === "/" || path === "/index.html")) {
      if (path === "") {
        // Relative URLs in the page resolve against /console/.
        return new Response(null, { status: 308, headers: { location: "console/" } });
      }
      return await page("index.html");
    }
    if (req.method === "GET" && /^\/console\.(css|js)$/.test(path)) {
      return await page(path.slice(1));
    }
    if (req.method === "GET" && path === "/api/config") {
      return answer({
        supabase_url: settings.supabaseUrl ?? null,
        anon_key: settings.anonKey ?? null,
        local_sign_in: settings.localSignIn,
        providers: PROVIDERS.map((p) => ({
          provider: p,
          name: providerFacts[p].displayName,
          oauth: isOAuthProvider(p),
          streams: STREAMS.filter((s) => (providersWith(s) as string[]).includes(p)),
        })),
      });
    }
    if (req.method === "POST" && path === "/api/local-sign-in") return await localSignIn(req);
    if (path.startsWith("/api/")) return await api(req);
    return jsonError("not_found", "no such console page");
  };
}

/** The connection row with the README's hint for its last error. */
function withHint<T extends { last_error: string | null }>(row: T): T & { hint: string | null } {
  return { ...row, hint: hintFor(row.last_error) ?? null };
}

/** A refusal the SQL API raised (its message and hint) as the JobError it stands for. */
function sqlRefusal(err: unknown, codes: Record<string, JobError["code"]>): unknown {
  const code = codes[pgErrorCode(err) ?? ""];
  if (!code) return err;
  const e = err as { message?: string; hint?: string };
  return new JobError(code, `${e.message}${e.hint ? ` (${e.hint})` : ""}`);
}
