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
// - Wall clock: a worker lives at most 150 s (free plan) from its start, whatever it runs
//   (WORKER_LIFECYCLE below).
// The limits are settings (TETHER_EDGE_CPU_MS, TETHER_EDGE_MEMORY_MB, TETHER_EDGE_WALL_CLOCK_MS),
// for a paid plan's 400 s wall clock. A worker that dies, by a limit or a crash, is started again,
// as the platform starts a new isolate; /health reports each function.
//
// It keeps figures per function (FunctionStats: invocations, the most CPU one invocation used with
// its background tasks, the highest resident memory overall and per worker, workers retired,
// dropped and ended by limit), served at GET /_stats and reset by DELETE /_stats: what the
// benchmarks report. They hold no secret.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { EDGE_WALL_CLOCK_MS } from "../../functions-shared/env.ts";
import { edgeDenoPath } from "./edge_deno.ts";
import { INVOCATION_HEADER, parseMark } from "./edge_marks.ts";
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
  /** How long a worker lives from its start: 150 s on the free plan, 400 s on paid plans. */
  wallClockMs: number;
  /** How long a request may wait for its answer: 150 s on Supabase, then 504. */
  requestIdleMs: number;
}

export function edgeLimits(): EdgeLimits {
  return {
    cpuMs: positiveInt("TETHER_EDGE_CPU_MS", 2_000),
    memoryMb: positiveInt("TETHER_EDGE_MEMORY_MB", 256),
    wallClockMs: positiveInt("TETHER_EDGE_WALL_CLOCK_MS", EDGE_WALL_CLOCK_MS),
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
  /** Each function's figures since the start or the last reset (what GET /_stats answers). */
  stats(): Promise<Record<string, FunctionStats>>;
  /** Starts the figures afresh (DELETE /_stats). */
  resetStats(): Promise<void>;
  stop(): Promise<void>;
}

/** The limits a worker can be ended for (546 for what it was running). */
export type LimitKind = "cpu_time" | "memory" | "wall_clock";

/**
 * WORKER_LIFECYCLE, as supabase/edge-runtime runs a function's worker (the per-worker supervisor,
 * crates/base/src/worker/supervisor/strategy_per_worker.rs, and the pool, crates/base/src/worker/
 * pool.rs), which the Limits page sums up as "the duration an Edge Function worker will stay
 * active. During this period, a worker can serve multiple requests or process background tasks":
 * - The wall clock is split in two intervals of a timer started with the worker's supervisor. At
 *   the first, half the wall clock (75 s on the free plan), the worker is retired
 *   (`early_retire_fn`: `is_retired` raised): the pool routes no new request to it
 *   (`maybe_active_worker` skips a retired worker, `send_request` refuses one) and starts a new
 *   worker for them. At the second, the full wall clock, it is terminated
 *   (`ShutdownReason::WallClockTime`) whatever it is running; what is in flight fails with 546
 *   (supabase.com/docs/guides/functions/status-codes: "546 … execution was stopped due to a
 *   resource limit"; supabase.com/kb/troubleshooting/edge-function-limits: "When the wall clock
 *   time limit is reached, a 546 HTTP error is returned").
 * - A worker with a resource alert (retired by the wall clock, or its memory at half the limit:
 *   `mem_reached_half`, runtime/mod.rs) is dropped early (`ShutdownReason::EarlyDrop`) once all its
 *   requests are answered and its promises (background tasks) resolved (`can_early_drop`). Half the
 *   memory does not raise `is_retired`: the worker still takes requests until it is idle.
 * Locally the wall clock counts from when the worker listens (a local Deno boots slower than an
 * isolate), and half the memory is judged when the worker becomes idle, on the V8 heap and
 * external memory the worker reports (./edge_worker.ts), not on the resident set the 256 MB limit
 * is held to.
 */
export type RetireKind = "wall_clock" | "memory";

/** One function's figures: counts, and the worst an invocation or a worker did. */
export interface FunctionStats {
  /** Invocations that ended: answered, with their background tasks done (or their worker gone). */
  invocations: number;
  /** Invocations running now (answering, or their background tasks). */
  running: number;
  /**
   * The most CPU time one invocation used, its background tasks included: what the 2 s limit is
   * held against. Read from /proc every 50 ms in 10 ms ticks; CPU a worker spends while running
   * several invocations is shared out evenly between them.
   */
  max_cpu_ms_per_invocation: number;
  /**
   * CPU time the function's workers spent, all generations, their boot excluded (same reading):
   * what a benchmark divides by its pages or refreshes, correct across a retirement mid-run.
   */
  cpu_ms: number;
  /** The highest resident memory (peak RSS) a worker of the function reached, in MB. */
  max_rss_mb: number;
  /** The same for each worker, in the order they started (since the last reset), in MB. */
  max_rss_mb_by_worker: number[];
  /** Workers retired (WORKER_LIFECYCLE): at half the wall clock, or at half the memory limit. */
  retirements: Record<RetireKind, number>;
  /** Retired workers ended once idle, having finished all they ran (the platform's EarlyDrop). */
  early_drops: number;
  /** Workers ended for passing a limit, by limit. */
  kills: Record<LimitKind, number>;
  /** Workers that exited by themselves otherwise (a crash). */
  crashes: number;
}

function emptyStats(): Omit<FunctionStats, "running"> {
  return {
    invocations: 0,
    max_cpu_ms_per_invocation: 0,
    cpu_ms: 0,
    max_rss_mb: 0,
    max_rss_mb_by_worker: [],
    retirements: { wall_clock: 0, memory: 0 },
    early_drops: 0,
    kills: { cpu_time: 0, memory: 0, wall_clock: 0 },
    crashes: 0,
  };
}

/**
 * A request and the background tasks it handed over: the CPU charged to it so far. It ends when
 * the gateway has its answer, the worker has said its handler returned, and its tasks are done.
 */
interface Invocation {
  cpuMs: number;
  answered: boolean;
  handled: boolean;
  tasks: number;
}

const ended = (inv: Invocation) => inv.answered && inv.handled && inv.tasks <= 0;

interface Worker {
  port: number;
  process: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** When it began to listen (performance.now()): its wall clock counts from here. */
  startedAt: number;
  exited: boolean;
  ready: boolean;
  /** Why it was retired, once it was: it is dropped when idle. */
  retired?: RetireKind;
  /** Dropped by the gateway once retired and idle. */
  dropped: boolean;
  /** Why it was ended for a limit, when it was. */
  killedFor?: string;
  /** What it runs, by the id the gateway gave each request. */
  invocations: Map<string, Invocation>;
  lastCpuMs: number;
  /** Its entry in its function's max_rss_mb_by_worker. */
  rssIndex: number;
  /** The memory it last said it holds as the Edge Runtime counts it (V8 heap + external), in MB. */
  heapMb: number;
}

interface Fn {
  name: string;
  entry: string;
  /** The latest worker: new requests go to it unless it is retired (then to a new one). */
  worker: Worker;
  /** Retired workers not yet ended. */
  retiring: Set<Worker>;
  stats: Omit<FunctionStats, "running">;
  restarts: number;
}

const idle = (w: Worker) => [...w.invocations.values()].every(ended);

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

  /**
   * The invocation a worker's mark names; one the worker no longer runs a request for (work begun
   * outside any request, "", or a task handed over after its invocation was counted) is charged as
   * an invocation of its own.
   */
  function invocationOf(worker: Worker, id: string): Invocation {
    let inv = worker.invocations.get(id);
    if (!inv) {
      inv = { cpuMs: 0, answered: true, handled: true, tasks: 0 };
      worker.invocations.set(id, inv);
    }
    return inv;
  }

  /** Counts an ended invocation in its function's figures. */
  function record(fn: Fn, inv: Invocation): void {
    fn.stats.invocations++;
    fn.stats.max_cpu_ms_per_invocation = Math.max(fn.stats.max_cpu_ms_per_invocation, inv.cpuMs);
  }

  function spawnWorker(fn: Fn): Worker {
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
      startedAt: performance.now(),
      exited: false,
      ready: false,
      dropped: false,
      invocations: new Map(),
      lastCpuMs: 0,
      rssIndex: fn.stats.max_rss_mb_by_worker.push(0) - 1,
      heapMb: 0,
    };
    pids[fn.name] = process.pid;
    pipeLines(process.stdout, (line) => {
      const mark = parseMark(line);
      if (!mark) return log(`[${fn.name}] ${line}`);
      if (mark.kind === "memory") return void (worker.heapMb = Number(mark.subject) / 2 ** 20);
      const inv = invocationOf(worker, mark.subject);
      if (mark.kind === "handled") inv.handled = true;
      else if (mark.kind === "task+") inv.tasks++;
      else inv.tasks--;
    });
    pipeLines(process.stderr, (l) => log(`[${fn.name}] ${l}`));
    return worker;
  }

  /** Counts what a worker ran once it exits, and starts a new one if it was the current one. */
  function supervise(fn: Fn, worker: Worker): void {
    worker.process.status.then(async (status) => {
      worker.exited = true;
      worker.ready = false;
      fn.retiring.delete(worker);
      // What it was running ends with it.
      for (const inv of worker.invocations.values()) record(fn, inv);
      worker.invocations.clear();
      if (stopping || worker.dropped) return;
      if (!worker.killedFor) fn.stats.crashes++;
      const why = worker.killedFor ?? `exited with code ${status.code}`;
      // A retired one is not started again: the next request starts a new worker.
      if (worker !== fn.worker || worker.retired) return log(`[${fn.name}] retired worker ${why}`);
      log(`[${fn.name}] worker ${why}; starting a new one`);
      fn.restarts++;
      // A worker that keeps dying at start waits longer each time, up to 5 s.
      await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(fn.restarts, 6))));
      if (stopping) return;
      start(fn);
    });
  }

  /** Starts the function's next worker: new requests go to it once it listens. */
  function start(fn: Fn): Worker {
    const worker = spawnWorker(fn);
    fn.worker = worker;
    supervise(fn, worker);
    listening(fn, worker).catch(() => {});
    return worker;
  }

  /** Waits until a worker accepts connections, or exits (then `ready` stays false). */
  async function listening(fn: Fn, worker: Worker): Promise<void> {
    await waitFor(`the ${fn.name} function to listen`, async () => {
      if (worker.exited || worker.ready) return true;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: worker.port });
      conn.close();
      // Booting is not a request's: charge only what comes after.
      worker.lastCpuMs = await cpuMs(worker.process.pid);
      worker.startedAt = performance.now();
      worker.ready = true;
      return true;
    }, 60_000);
    if (worker.ready) fn.restarts = 0;
  }

  /** WORKER_LIFECYCLE: no new requests for a retired worker; the next one starts a new worker. */
  function retire(fn: Fn, worker: Worker, kind: RetireKind): void {
    worker.retired = kind;
    fn.stats.retirements[kind]++;
    fn.retiring.add(worker);
  }

  /** WORKER_LIFECYCLE: a retired worker that has finished all it ran ends (EarlyDrop). */
  function drop(fn: Fn, worker: Worker): void {
    worker.dropped = true;
    worker.ready = false;
    fn.stats.early_drops++;
    try {
      worker.process.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  for (const [name, entry] of Object.entries(entries)) {
    const f: Fn = {
      name,
      entry,
      worker: undefined as unknown as Worker,
      retiring: new Set(),
      stats: emptyStats(),
      restarts: 0,
    };
    f.worker = spawnWorker(f);
    fns.set(name, f);
  }

  /** A function's workers that are alive: the current one and those retiring. */
  const workersOf = (f: Fn) => [...new Set([f.worker, ...f.retiring])].filter((w) => !w.exited);

  /**
   * Shares out each worker's CPU since the last look between the invocations it is running (and
   * those that ended since: they are charged once more, then counted), ends a worker past a
   * limit, and runs its lifecycle (WORKER_LIFECYCLE).
   */
  async function enforceLimits(): Promise<void> {
    for (const f of fns.values()) {
      for (const w of workersOf(f)) await enforceOn(f, w);
    }
  }

  async function enforceOn(f: Fn, w: Worker): Promise<void> {
    if (w.exited || !w.ready || w.killedFor || w.dropped) return;
    const age = performance.now() - w.startedAt;
    if (age >= limits.wallClockMs) {
      return killForLimit(
        f,
        w,
        "wall_clock",
        `Wall clock limit reached (${limits.wallClockMs} ms)`,
      );
    }
    // Those ended before the CPU is read have had all theirs by then.
    const finished = [...w.invocations].filter(([, inv]) => ended(inv));
    let cpu: number;
    let rss: { now: number; peak: number };
    try {
      cpu = await cpuMs(w.process.pid);
      rss = await rssMb(w.process.pid);
    } catch {
      return; // it just exited
    }
    if (w.exited || w.killedFor || w.dropped) return;
    f.stats.max_rss_mb = Math.max(f.stats.max_rss_mb, rss.peak);
    const byWorker = f.stats.max_rss_mb_by_worker;
    byWorker[w.rssIndex] = Math.max(byWorker[w.rssIndex] ?? 0, rss.peak);
    const spent = cpu - w.lastCpuMs;
    w.lastCpuMs = cpu;
    f.stats.cpu_ms += spent;
    const running = [...w.invocations.values()];
    for (const inv of running) inv.cpuMs += spent / running.length;
    const worst = Math.max(0, ...running.map((inv) => inv.cpuMs));
    if (worst > limits.cpuMs) {
      return killForLimit(f, w, "cpu_time", `CPU Time exceeded (${Math.round(worst)} ms)`);
    }
    if (rss.now > limits.memoryMb) {
      return killForLimit(f, w, "memory", `Memory limit exceeded (${Math.round(rss.now)} MB)`);
    }
    // Those that had ended before the read are counted (unless a reset dropped them since).
    for (const [id, inv] of finished) if (w.invocations.delete(id)) record(f, inv);
    if (!w.retired && age >= limits.wallClockMs / 2) retire(f, w, "wall_clock");
    if (!idle(w)) return;
    if (!w.retired && w.heapMb >= limits.memoryMb / 2) retire(f, w, "memory");
    if (w.retired) drop(f, w);
  }

  function killForLimit(f: Fn, w: Worker, kind: LimitKind, why: string): void {
    f.stats.kills[kind]++;
    w.killedFor = `shut down: ${why}`;
    w.ready = false; // new requests wait for the next worker
    try {
      w.process.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  let sampling: Promise<void> | undefined;
  /** One look at every worker (the one under way, if one is). */
  function sample(): Promise<void> {
    sampling ??= enforceLimits().finally(() => sampling = undefined);
    return sampling;
  }
  const sampler = setInterval(sample, 50);

  async function stats(): Promise<Record<string, FunctionStats>> {
    // A look that began before the last invocation ended may have missed it: take a new one too.
    await sample();
    await sample();
    return Object.fromEntries([...fns.values()].map((f) => {
      const running = workersOf(f)
        .reduce((n, w) => n + [...w.invocations.values()].filter((inv) => !ended(inv)).length, 0);
      return [f.name, { ...structuredClone(f.stats), running }];
    }));
  }

  async function resetStats(): Promise<void> {
    for (const f of fns.values()) {
      f.stats = emptyStats();
      for (const w of workersOf(f)) {
        w.rssIndex = f.stats.max_rss_mb_by_worker.push(0) - 1;
        // Those that ended before now are not counted; those running are, when they end.
        for (const [id, inv] of w.invocations) if (ended(inv)) w.invocations.delete(id);
        // The kernel's peak RSS starts again from the current one (proc(5): clear_refs, "5").
        await Deno.writeTextFile(`/proc/${w.process.pid}/clear_refs`, "5").catch(() => {});
      }
    }
  }

  // /health answers 503 until every function listens: "up" means callable.
  const server = Deno.serve(
    { port: opts.port, hostname: "127.0.0.1", onListen: () => {} },
    (req) => route(req),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;

  async function stop() {
    stopping = true;
    clearInterval(sampler);
    const workers = [...fns.values()].flatMap(workersOf);
    for (const w of workers) {
      try {
        w.process.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    await Promise.allSettled(workers.map((w) => w.process.status));
    await server.shutdown();
  }

  async function route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === "/auth/v1/.well-known/jwks.json" && opts.jwks) return Response.json(opts.jwks);
    if (path === "/health") {
      const functions = Object.fromEntries(
        [...fns.values()].map((
          f,
        ) => [f.name, f.worker.retired || (f.worker.ready && !f.worker.exited) ? "up" : "down"]),
      );
      const ok = Object.values(functions).every((state) => state === "up");
      return Response.json({ ok, functions }, { status: ok ? 200 : 503 });
    }
    if (path === "/_stats") {
      if (req.method === "DELETE") await resetStats();
      else if (req.method !== "GET") return new Response(null, { status: 405 });
      return Response.json({ limits, functions: await stats() });
    }
    const match = path.match(/^\/functions\/v1\/([^/]+)(\/.*)?$/);
    const f = match ? fns.get(match[1]!) : undefined;
    if (!match || !f) {
      return Response.json({ error: "not_found", message: `no function at ${path}` }, {
        status: 404,
      });
    }
    // The pool starts a worker when none may take the request; one being started or replaced is
    // waited for, as the platform boots a new isolate.
    if (f.worker.retired) start(f);
    await waitFor(`the ${f.name} function`, () => Promise.resolve(f.worker.ready), 30_000)
      .catch(() => {});
    const worker = f.worker;
    if (!worker.ready || worker.exited) {
      return Response.json({ code: "BOOT_ERROR", message: `${f.name} could not start` }, {
        status: 503,
      });
    }
    const id = crypto.randomUUID();
    const invocation: Invocation = { cpuMs: 0, answered: false, handled: false, tasks: 0 };
    worker.invocations.set(id, invocation);
    const target = `http://127.0.0.1:${worker.port}/${match[1]}${match[2] ?? ""}${
      new URL(req.url).search
    }`;
    try {
      // The platform's gateway takes the whole request before a worker answers; a worker that
      // answers early (413 on an oversized body) must not cut an upload still in flight.
      const body = req.body === null ? null : await req.arrayBuffer();
      const forwarded = new Headers(req.headers);
      forwarded.set(INVOCATION_HEADER, id);
      const res = await fetch(target, {
        method: req.method,
        headers: forwarded,
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
      if (worker.killedFor) {
        // Answered once the worker is gone and what it ran is counted, as the platform's is.
        await worker.process.status;
        return Response.json(WORKER_RESOURCE_LIMIT, { status: 546 });
      }
      if (err instanceof DOMException && err.name === "TimeoutError") {
        return Response.json({ code: "TIMEOUT", message: "request idle timeout reached" }, {
          status: 504,
        });
      }
      invocation.handled = true; // it never reached the handler
      return Response.json(
        { error: "function_unavailable", message: `${f.name}: ${(err as Error).message}` },
        { status: 502 },
      );
    } finally {
      invocation.answered = true;
    }
  }

  try {
    for (const f of fns.values()) supervise(f, f.worker);
    // A worker that dies booting (its port taken meanwhile, say) is replaced by supervise():
    // wait for the function's current worker, as a request would.
    const deadline = Date.now() + 60_000;
    for (const f of fns.values()) {
      while (!f.worker.ready) {
        if (Date.now() > deadline) {
          fail(`timed out after 60 s waiting for the ${f.name} function to listen`);
        }
        await listening(f, f.worker);
        if (!f.worker.ready) await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    functionsUrl: `${url}/functions/v1`,
    pids,
    stats,
    resetStats,
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
