// LOCAL STAND-IN for what the Supabase Edge Runtime gives a function's worker, never deployed.
// `deno run … scripts/local/edge_worker.ts <entry point>` runs one function the way the platform
// does, as far as a plain Deno process can:
// - `EdgeRuntime.waitUntil(promise)` keeps work going after the answer (Supabase "Background
//   tasks");
// - the worker ends when its parent does (its stdin closes), so a dead stack leaves no orphan.
// The limits (CPU time, memory, the wall clock) and the worker's lifecycle are enforced from
// outside, by the gateway (./functions.ts), as the Edge Runtime's supervisor does from outside the
// isolate. This tells it (./edge_marks.ts) when a request's handler returns and when a background
// task starts and ends, naming the invocation each belongs to, so a task's CPU is charged to the
// request that handed it over, and a worker is known idle when all are done.

import { AsyncLocalStorage } from "node:async_hooks";
import { type EdgeMarkKind, INVOCATION_HEADER, markLine } from "./edge_marks.ts";

const encoder = new TextEncoder();
/** Tells the gateway (./functions.ts) what to charge CPU time to. */
const mark = (kind: EdgeMarkKind, subject: string) =>
  Deno.stdout.writeSync(encoder.encode(`${markLine(kind, subject)}\n`));

/**
 * Says how much memory the worker holds the way the Edge Runtime counts it against half its limit
 * (`mem_reached_half`): V8's used heap plus external memory (supabase/edge-runtime
 * crates/base/src/runtime/mod.rs, `MemCheck::check`: `used_heap_size` + `external_memory`). Sent
 * before a mark that may leave the worker idle, when the gateway decides whether to drop it.
 */
function markMemory(): void {
  const { heapUsed, external } = Deno.memoryUsage();
  mark("memory", String(heapUsed + external));
}

function shutdown(reason: string): never {
  console.error(`edge worker shutdown: ${reason}`);
  Deno.exit(1);
}

/** The invocation (the gateway's id for the request) whose code is running. */
const invocation = new AsyncLocalStorage<string>();

Object.defineProperty(globalThis, "EdgeRuntime", {
  value: Object.freeze({
    waitUntil(task: Promise<unknown>): void {
      const id = invocation.getStore() ?? "";
      mark("task+", id);
      task.then(() => {}, () => {}).finally(() => {
        markMemory();
        mark("task-", id);
      });
    },
  }),
});

/** Runs the function's handler as the invocation the gateway named, and says when it returned. */
function tracked(handler: Deno.ServeHandler): Deno.ServeHandler {
  return (req, info) => {
    const id = req.headers.get(INVOCATION_HEADER) ?? "";
    return invocation.run(id, async () => {
      try {
        return await handler(req, info);
      } finally {
        markMemory();
        mark("handled", id);
      }
    });
  };
}

// The platform serves a function wherever it routes it, whatever address the function asks for;
// here that is TETHER_EDGE_PORT, given by the gateway (Deno 2.1 has no DENO_SERVE_ADDRESS).
const port = Number(Deno.env.get("TETHER_EDGE_PORT"));
const serve = Deno.serve.bind(Deno);
Object.assign(Deno, {
  serve(...args: unknown[]) {
    const [first, second] = args as [unknown, unknown];
    const handler = typeof first === "function" ? first : second ??
      (first as { handler: unknown }).handler;
    const options = typeof first === "function" ? {} : first as Record<string, unknown>;
    return serve(
      { ...options, hostname: "127.0.0.1", port, onListen: () => {} },
      tracked(handler as Deno.ServeHandler),
    );
  },
});

// The parent holds our stdin open for as long as it lives.
(async () => {
  const buffer = new Uint8Array(64);
  try {
    while ((await Deno.stdin.read(buffer)) !== null) { /* nothing is sent */ }
  } catch { /* closed */ }
  Deno.exit(0);
})();

const entry = Deno.args[0];
if (!entry) shutdown("usage: edge_worker.ts <entry point>");
await import(new URL(entry, `file://${Deno.cwd()}/`).href);
