// The local function server holds functions to Supabase's Edge Runtime limits and heals as the
// platform does (scripts/local/functions.ts, scripts/local/edge_worker.ts). The figures and the
// answers are Supabase's own: supabase.com/docs/guides/functions/limits (2 s of CPU per request,
// 256 MB, a 150 s wall clock on the free plan) and …/functions/status-codes (546
// WORKER_RESOURCE_LIMIT when a worker passes its CPU or memory limit, 504 on the request idle
// timeout). The fixture function (tests/fixtures/edge/limits.ts) uses what it is asked to.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type EdgeLimits,
  type FunctionsServer,
  startFunctions,
  WORKER_RESOURCE_LIMIT,
} from "../scripts/local/functions.ts";
import { cpuMs } from "../scripts/local/proc.ts";
import { paths } from "../scripts/local/util.ts";
import { eventually } from "./helpers/stack.ts";

const FIXTURE = join(paths.root, "tests", "fixtures", "edge", "limits.ts");

async function withFixture(
  limits: Partial<EdgeLimits>,
  fn: (served: FunctionsServer, call: (query: string) => Promise<Response>) => Promise<void>,
) {
  const served = await startFunctions({
    port: 0,
    env: {},
    entries: { limits: FIXTURE },
    limits,
    log: () => {},
  });
  const call = (query: string) => fetch(`${served.functionsUrl}/limits?${query}`);
  try {
    await fn(served, call);
  } finally {
    await served.stop();
  }
}

async function health(served: FunctionsServer) {
  const res = await fetch(`${served.url}/health`);
  return { status: res.status, body: await res.json() };
}

Deno.test("a request within the CPU limit is answered; one past it gets 546 WORKER_RESOURCE_LIMIT and a new worker", () =>
  withFixture({ cpuMs: 300 }, async (served, call) => {
    const fine = await call("op=burn&ms=50");
    assert.equal(fine.status, 200);
    await fine.body?.cancel();
    const before = served.pids.limits;
    const over = await call("op=burn&ms=5000");
    assert.equal(over.status, 546);
    assert.deepEqual(await over.json(), WORKER_RESOURCE_LIMIT);
    assert.equal(served.limitKills("limits"), 1);
    // The platform starts a new isolate: the next call is served by a new worker.
    const after = await call("op=burn&ms=10");
    assert.equal(after.status, 200);
    await after.body?.cancel();
    assert.notEqual(served.pids.limits, before);
  }));

Deno.test("CPU spent in a background task after the answer counts too", () =>
  withFixture({ cpuMs: 300 }, async (served, call) => {
    const res = await call("op=background-burn&ms=5000");
    assert.equal(res.status, 200, "answered before the work");
    await res.body?.cancel();
    await eventually(
      "the worker to be shut down",
      () => Promise.resolve(served.limitKills("limits") === 1 || undefined),
      10_000,
    );
  }));

Deno.test("a worker past its memory limit gets 546 and a new worker", () =>
  withFixture({ memoryMb: 128 }, async (_served, call) => {
    const fine = await call("op=hold&mb=16");
    assert.equal(fine.status, 200);
    await fine.body?.cancel();
    const over = await call("op=hold&mb=200");
    assert.equal(over.status, 546);
    assert.deepEqual(await over.json(), WORKER_RESOURCE_LIMIT);
  }));

Deno.test("a background task still running at the wall clock limit ends its worker", () =>
  withFixture({ wallClockMs: 400 }, async (served, call) => {
    const first = served.pids.limits;
    const short = await call("op=background&ms=50");
    await short.body?.cancel();
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(served.pids.limits, first, "a task that ends in time changes nothing");
    const long = await call("op=background&ms=5000");
    assert.equal(long.status, 200);
    await long.body?.cancel();
    await eventually(
      "a new worker",
      () => Promise.resolve(served.pids.limits !== first || undefined),
      10_000,
    );
  }));

Deno.test("a worker that dies is started again, and /health says which function is down meanwhile", () =>
  withFixture({}, async (served, call) => {
    assert.deepEqual(await health(served), {
      status: 200,
      body: { ok: true, functions: { limits: "up" } },
    });
    const dead = served.pids.limits!;
    Deno.kill(dead, "SIGKILL");
    const down = await eventually("/health to report the dead worker", async () => {
      const h = await health(served);
      return h.status === 503 ? h : undefined;
    });
    assert.deepEqual(down.body, { ok: false, functions: { limits: "down" } });
    await eventually("/health to be ok again", async () => {
      const h = await health(served);
      return h.status === 200 || undefined;
    });
    const res = await call("op=burn&ms=1");
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.notEqual(served.pids.limits, dead);
  }));

Deno.test("a gateway that dies takes its workers with it: no orphan is left", async () => {
  const script = `
    import { startFunctions } from ${
    JSON.stringify(join(paths.root, "scripts/local/functions.ts"))
  };
    const served = await startFunctions({ port: 0, env: {}, entries: { limits: ${
    JSON.stringify(FIXTURE)
  } }, log: () => {} });
    console.log(served.pids.limits);
  `;
  const gateway = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: paths.root,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = gateway.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const worker = Number(text.trim());
  assert.ok(worker > 0, `the gateway printed its worker's pid: ${text}`);
  await cpuMs(worker); // alive
  gateway.kill("SIGKILL");
  await gateway.status;
  reader.releaseLock();
  await gateway.stdout.cancel().catch(() => {});
  await eventually("the worker to end", async () => {
    try {
      await cpuMs(worker);
      return undefined;
    } catch {
      return true;
    }
  }, 10_000);
});
