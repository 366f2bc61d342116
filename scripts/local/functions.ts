// Serves the Edge Functions locally the way Supabase does: each function is its own process on the
// Edge Runtime's Deno (./edge_deno.ts; ./edge_worker.ts running supabase/functions/<name>/index.ts), behind a gateway at
// <url>/functions/v1/<name>/… that forwards `/<name>/…` (the path a deployed function sees). The
// gateway also publishes the project's JWKS at /auth/v1/.well-known/jwks.json, as Supabase Auth
// does.
//
// It holds every function to the platform's limits (supabase.com/docs/guides/functions/limits and
// …/status-codes), so an invocation that would die on Supabase dies here too:
// - CPU time: 2 s per request, background tasks (EdgeRuntime.waitUntil) included. When a worker
//   passes it, the worker is killed and the request answered 546 {"code":
//   "WORKER_RESOURCE_LIMIT"}. A Supabase isolate serves one request at a time; a local worker may
//   serve several, so the CPU a worker spends is shared out between the requests and background
//   tasks it is running.
// - Memory: 256 MB of resident memory per worker (546 likewise).
// - Request idle timeout: 150 s without an answer is a 504.
// - Wall clock: a background task still running 150 s (free plan) after it began ends its worker
//   (./edge_worker.ts).
// The limits are settings (TETHER_EDGE_CPU_MS, TETHER_EDGE_MEMORY_MB, TETHER_EDGE_WALL_CLOCK_MS),
// for a paid plan's 400 s wall clock. A worker that dies, by a limit or a crash, is started again,
// as the platform starts a new isolate; /health reports each function.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { edgeDenoPath } from "./edge_deno.ts";
import { BACKGROUND_MARK } from "./edge_marks.ts";
import { cpuMs, rssMb } from "./proc.ts";
import { fail, freePort, paths, waitFor } from "./util.ts";

export const FUNCTION_NAMES: string[] = readdirSync(join(paths.root, "supabase", "functions"), {
  withFileTypes: true,
})
  .filter((e) => e.isDirectory() && !e.name.startsWith("_"))
  .map((e) => e.name)
  .sort();

export interface EdgeLimits {
  /** CPU time a request (with its background tasks) may use: 2,000 ms on Supabase. */
  cpuMs: number;
  /** Resident memory of a worker: 256 MB on Supabase. */
  memoryMb: number;
  /** How long a background task may run: 150 s on the free plan, 400 s on paid plans. */
  wallClockMs: number;
  /** How long a request may wait for its answer: 150 s on Supabase, then 504. */
  requestIdleMs: number;
}

export function edgeLimits(): EdgeLimits {
  return {
    cpuMs: positiveInt("TETHER_EDGE_CPU_MS", 2_000),
    memoryMb: positiveInt("TETHER_EDGE_MEMORY_MB", 256),
    wallClockMs: positiveInt("TETHER_EDGE_WALL_CLOCK_MS", 150_000),
    requestIdleMs: 150_000,
  };
}

function positiveInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive whole number, got "${raw}"`);
  return n;
}

/** What Supabase answers when a worker passes its CPU or memory limit. */
export const WORKER_RESOURCE_LIMIT = {
  code: "WORKER_RESOURCE_LIMIT",
  message: "Function failed due to not having enough compute resources (please check logs)",
};

export interface FunctionsOptions {
  /** Gateway port; 0 picks a free one. */
  port: number;
  /** The environment a deployed function gets (SUPABASE_DB_URL, keys, …). */
  env: Record<string, string>;
  jwks?: unknown;
  names?: string[];
  /** Other entry points to serve as functions, by name (tests serve fixtures this way). */
  entries?: Record<string, string>;
  limits?: Partial<EdgeLimits>;
  /** Where function output goes, one line at a time. Default: this process's stderr. */
  log?: (line: string) => void;
}

export interface FunctionsServer {
  /** e.g. http://127.0.0.1:54321 (SUPABASE_URL) */
  url: string;
  /** e.g. http://127.0.0.1:54321/functions/v1 (FUNCTIONS_URL) */
  functionsUrl: string;
  /** Process id of each function's current worker (benchmarks read /proc). */
  pids: Record<string, number>;
  /** The worker of `name` was killed for passing a limit this many times. */
  limitKills(name: string): number;
  stop(): Promise<void>;
}

/** A request or a background task a worker is running: the CPU charged to it so far. */
interface Work {
  cpuMs: number;
}

interface Worker {
  port: number;
  process: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  exited: boolean;
  ready: boolean;
  /** Why the gateway killed it, when it did. */
  killedFor?: string;
  requests: Set<Work>;
  background: Work[];
  lastCpuMs: number;
}

interface Fn {
  name: string;
  entry: string;
  worker: Worker;
  limitKills: number;
  restarts: number;
}

export async function startFunctions(opts: FunctionsOptions): Promise<FunctionsServer> {
  const entries: Record<string, string> = {
    ...Object.fromEntries(
      (opts.names ?? (opts.entries ? [] : FUNCTION_NAMES)).map((
        name,
      ) => [name, join(paths.root, "supabase", "functions", name, "index.ts")]),
    ),
    ...opts.entries,
  };
  const log = opts.log ?? ((line: string) => console.error(line));
  const limits = { ...edgeLimits(), ...opts.limits };
  const fns = new Map<string, Fn>();
  const pids: Record<string, number> = {};
  let stopping = false;

  function spawnWorker(fn: { name: string; entry: string }): Worker {
    const port = freePort();
    const process = new Deno.Command(edgeDenoPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-sys",
        "--no-prompt",
        // V8's own heap stops below the resident limit the gateway enforces.
        `--v8-flags=--max-old-space-size=${limits.memoryMb}`,
        join(paths.root, "scripts", "local", "edge_worker.ts"),
        fn.entry,
      ],
      cwd: paths.root,
      clearEnv: true,
      env: {
        ...opts.env,
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        // An empty DENO_DIR would put Deno's caches in the working directory.
        ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
        TETHER_EDGE_PORT: String(port),
        TETHER_EDGE_WALL_CLOCK_MS: String(limits.wallClockMs),
        NO_COLOR: "1",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const worker: Worker = {
      port,
      process,
      stdin: process.stdin.getWriter(),
      exited: false,
      ready: false,
      requests: new Set(),
      background: [],
      lastCpuMs: 0,
    };
    pids[fn.name] = process.pid;
    pipeLines(process.stdout, (line) => {
      if (line === BACKGROUND_MARK.started) worker.background.push({ cpuMs: 0 });
      else if (line === BACKGROUND_MARK.ended) worker.background.shift();
      else log(`[${fn.name}] ${line}`);
    });
    pipeLines(process.stderr, (l) => log(`[${fn.name}] ${l}`));
    return worker;
  }

  function supervise(fn: Fn): void {
    const worker = fn.worker;
    worker.process.status.then(async (status) => {
      worker.exited = true;
      worker.ready = false;
      if (stopping) return;
      const why = worker.killedFor ?? `exited with code ${status.code}`;
      log(`[${fn.name}] worker ${why}; starting a new one`);
      fn.restarts++;
      // A worker that keeps dying at start waits longer each time, up to 5 s.
      await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(fn.restarts, 6))));
      if (stopping) return;
      fn.worker = spawnWorker(fn);
      supervise(fn);
      await listening(fn).catch(() => {});
    });
  }

  /** Waits until the function's current worker accepts connections (a replaced one included). */
  async function listening(fn: Fn): Promise<void> {
    await waitFor(`the ${fn.name} function to listen`, async () => {
      const worker = fn.worker;
      if (worker.exited) return false;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: worker.port });
      conn.close();
      // Booting is not a request's: charge only what comes after.
      worker.lastCpuMs = await cpuMs(worker.process.pid);
      worker.ready = true;
      return true;
    }, 60_000);
    fn.restarts = 0;
  }

  for (const [name, entry] of Object.entries(entries)) {
    const f: Fn = {
      name,
      entry,
      worker: undefined as unknown as Worker,
      limitKills: 0,
      restarts: 0,
    };
    f.worker = spawnWorker(f);
    fns.set(name, f);
  }

  /** Shares out each worker's CPU since the last look between what it is running. */
  async function enforceLimits(): Promise<void> {
    for (const f of fns.values()) {
      const w = f.worker;
      if (w.exited || !w.ready || w.killedFor) continue;
      const running = [...w.requests, ...w.background];
      let cpu: number;
      let rss: number;
      try {
        cpu = await cpuMs(w.process.pid);
        rss = (await rssMb(w.process.pid)).now;
      } catch {
        continue; // it just exited
      }
      const spent = cpu - w.lastCpuMs;
      w.lastCpuMs = cpu;
      if (running.length === 0) continue;
      for (const work of running) work.cpuMs += spent / running.length;
      const worst = Math.max(...running.map((work) => work.cpuMs));
      if (worst > limits.cpuMs) killForLimit(f, `CPU Time exceeded (${Math.round(worst)} ms)`);
      else if (rss > limits.memoryMb) {
        killForLimit(f, `Memory limit exceeded (${Math.round(rss)} MB)`);
      }
    }
  }

  function killForLimit(f: Fn, why: string): void {
    f.limitKills++;
    f.worker.killedFor = `shut down: ${why}`;
    f.worker.ready = false; // new requests wait for the next worker
    try {
      f.worker.process.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  let sampling = false;
  const sampler = setInterval(() => {
    if (sampling) return;
    sampling = true;
    enforceLimits().finally(() => sampling = false);
  }, 50);

  // /health answers 503 until every function listens: "up" means callable.
  const server = Deno.serve(
    { port: opts.port, hostname: "127.0.0.1", onListen: () => {} },
    (req) => route(req),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;

  async function stop() {
    stopping = true;
    clearInterval(sampler);
    for (const f of fns.values()) {
      try {
        f.worker.process.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    await Promise.allSettled([...fns.values()].map((f) => f.worker.process.status));
    await server.shutdown();
  }

  async function route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === "/auth/v1/.well-known/jwks.json" && opts.jwks) return Response.json(opts.jwks);
    if (path === "/health") {
      const functions = Object.fromEntries(
        [...fns.values()].map((f) => [f.name, f.worker.ready && !f.worker.exited ? "up" : "down"]),
      );
      const ok = Object.values(functions).every((state) => state === "up");
      return Response.json({ ok, functions }, { status: ok ? 200 : 503 });
    }
    const match = path.match(/^\/functions\/v1\/([^/]+)(\/.*)?$/);
    const f = match ? fns.get(match[1]!) : undefined;
    if (!match || !f) {
      return Response.json({ error: "not_found", message: `no function at ${path}` }, {
        status: 404,
      });
    }
    // A worker being replaced is waited for, as the platform boots a new isolate.
    await waitFor(`the ${f.name} function`, () => Promise.resolve(f.worker.ready), 30_000)
      .catch(() => {});
    const worker = f.worker;
    if (!worker.ready || worker.exited) {
      return Response.json({ code: "BOOT_ERROR", message: `${f.name} could not start` }, {
        status: 503,
      });
    }
    const work: Work = { cpuMs: 0 };
    worker.requests.add(work);
    const target = `http://127.0.0.1:${worker.port}/${match[1]}${match[2] ?? ""}${
      new URL(req.url).search
    }`;
    try {
      // The platform's gateway takes the whole request before a worker answers; a worker that
      // answers early (413 on an oversized body) must not cut an upload still in flight.
      const body = req.body === null ? null : await req.arrayBuffer();
      const res = await fetch(target, {
        method: req.method,
        headers: req.headers,
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(limits.requestIdleMs),
      });
      // The request counts until its body is read: that is when the worker is done with it. The
      // body arrives decoded, so its encoding and length headers no longer apply.
      const answer = await res.arrayBuffer();
      const headers = new Headers(res.headers);
      headers.delete("content-encoding");
      headers.delete("content-length");
      return new Response(answer, { status: res.status, headers });
    } catch (err) {
      if (worker.killedFor) return Response.json(WORKER_RESOURCE_LIMIT, { status: 546 });
      if (err instanceof DOMException && err.name === "TimeoutError") {
        return Response.json({ code: "TIMEOUT", message: "request idle timeout reached" }, {
          status: 504,
        });
      }
      return Response.json(
        { error: "function_unavailable", message: `${f.name}: ${(err as Error).message}` },
        { status: 502 },
      );
    } finally {
      worker.requests.delete(work);
    }
  }

  try {
    for (const f of fns.values()) supervise(f);
    for (const f of fns.values()) await listening(f);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    functionsUrl: `${url}/functions/v1`,
    pids,
    limitKills: (name) => fns.get(name)?.limitKills ?? 0,
    stop,
  };
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
