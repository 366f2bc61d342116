// Serves the Edge Functions locally the way Supabase does: each function is
// its own Deno process running supabase/functions/<name>/index.ts, behind a
// gateway at <url>/functions/v1/<name>/… that forwards `/<name>/…` (the path a
// deployed function sees). The gateway also publishes the project's JWKS at
// /auth/v1/.well-known/jwks.json, as Supabase Auth does.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fail, freePort, paths, waitFor } from "./util.ts";

export const FUNCTION_NAMES: string[] = readdirSync(join(paths.root, "supabase", "functions"), {
  withFileTypes: true,
})
  .filter((e) => e.isDirectory() && !e.name.startsWith("_"))
  .map((e) => e.name)
  .sort();

export interface FunctionsOptions {
  /** Gateway port; 0 picks a free one. */
  port: number;
  /** The environment a deployed function gets (SUPABASE_DB_URL, keys, …). */
  env: Record<string, string>;
  jwks?: unknown;
  names?: string[];
  /** Where function output goes, one line at a time. Default: this process's stderr. */
  log?: (line: string) => void;
}

export interface FunctionsServer {
  /** e.g. http://127.0.0.1:54321 (SUPABASE_URL) */
  url: string;
  /** e.g. http://127.0.0.1:54321/functions/v1 (FUNCTIONS_URL) */
  functionsUrl: string;
  /** Process id of each function (benchmarks read their memory and CPU time from /proc). */
  pids: Record<string, number>;
  stop(): Promise<void>;
}

interface Child {
  name: string;
  port: number;
  process: Deno.ChildProcess;
  exitCode: number | null;
}

export async function startFunctions(opts: FunctionsOptions): Promise<FunctionsServer> {
  const names = opts.names ?? FUNCTION_NAMES;
  const log = opts.log ?? ((line: string) => console.error(line));
  const deno = Deno.execPath();
  const children = new Map<string, Child>();

  for (const name of names) {
    const port = freePort();
    const process = new Deno.Command(deno, {
      args: [
        "run",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-sys",
        "--no-prompt",
        join(paths.root, "supabase", "functions", name, "index.ts"),
      ],
      cwd: paths.root,
      clearEnv: true,
      env: {
        ...opts.env,
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
        DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}`,
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    pipeLines(process.stdout, (l) => log(`[${name}] ${l}`));
    pipeLines(process.stderr, (l) => log(`[${name}] ${l}`));
    const child: Child = { name, port, process, exitCode: null };
    process.status.then((status) => child.exitCode = status.code);
    children.set(name, child);
  }

  // /health answers 503 until every function listens: "up" means callable.
  let ready = false;
  const server = Deno.serve(
    { port: opts.port, hostname: "127.0.0.1", onListen: () => {} },
    (req) => route(req, children, opts.jwks, ready),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;

  async function stop() {
    for (const child of children.values()) {
      try {
        child.process.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    await Promise.allSettled([...children.values()].map((c) => c.process.status));
    await server.shutdown();
  }

  try {
    for (const child of children.values()) {
      await waitFor(`the ${child.name} function to listen`, async () => {
        if (child.exitCode !== null) {
          fail(`the ${child.name} function exited with code ${child.exitCode}`);
        }
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: child.port });
        conn.close();
        return true;
      }, 60_000);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  ready = true;
  const pids = Object.fromEntries([...children.values()].map((c) => [c.name, c.process.pid]));
  return { url, functionsUrl: `${url}/functions/v1`, pids, stop };
}

async function route(
  req: Request,
  children: Map<string, Child>,
  jwks: unknown,
  ready: boolean,
) {
  const url = new URL(req.url);
  if (url.pathname === "/auth/v1/.well-known/jwks.json" && jwks) {
    return Response.json(jwks);
  }
  if (url.pathname === "/health") {
    return Response.json({ ok: ready }, { status: ready ? 200 : 503 });
  }
  const match = url.pathname.match(/^\/functions\/v1\/([^/]+)(\/.*)?$/);
  const child = match ? children.get(match[1]!) : undefined;
  if (!match || !child) {
    return Response.json({ error: "not_found", message: `no function at ${url.pathname}` }, {
      status: 404,
    });
  }
  const target = `http://127.0.0.1:${child.port}/${match[1]}${match[2] ?? ""}${url.search}`;
  try {
    return await fetch(target, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: "manual",
    });
  } catch (err) {
    return Response.json(
      { error: "function_unavailable", message: `${child.name}: ${(err as Error).message}` },
      { status: 502 },
    );
  }
}

async function pipeLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onLine(line);
  }
  if (buffered.trim()) onLine(buffered);
}
