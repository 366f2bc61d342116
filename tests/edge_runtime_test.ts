// The local function server holds functions to Supabase's Edge Runtime limits and heals as the
// platform does (scripts/local/functions.ts, scripts/local/edge_worker.ts). The figures and the
// answers are Supabase's own: supabase.com/docs/guides/functions/limits (2 s of CPU per request,
// 256 MB, a 150 s wall clock on the free plan: how long a worker stays active) and
// …/functions/status-codes (546 WORKER_RESOURCE_LIMIT when a worker is stopped by a resource limit,
// 504 on the request idle timeout); the worker lifecycle is supabase/edge-runtime's
// (crates/base/src/worker/supervisor/strategy_per_worker.rs). The fixture function (tests/fixtures/edge/limits.ts) uses what it is asked to.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type EdgeLimits,
  type FunctionsServer,
  type FunctionStats,
  startFunctions,
  WORKER_RESOURCE_LIMIT,
} from "../scripts/local/functions.ts";
import { EDGE_RUNTIME_DENO } from "../scripts/local/edge_deno.ts";
import {
  AFTER_BUDGET_MS,
  EDGE_WALL_CLOCK_MS,
  EnvError,
  readEnv,
  TIME_BUDGET_MS,
} from "../functions-shared/env.ts";
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

Deno.test("functions run on the Deno that Supabase's Edge Runtime embeds, not the toolchain's", () =>
  withFixture({}, async (_served, call) => {
    const res = await call("op=version");
    assert.deepEqual(await res.json(), { deno: EDGE_RUNTIME_DENO });
    assert.notEqual(Deno.version.deno, EDGE_RUNTIME_DENO, "the tests themselves run on another");
  }));

Deno.test("a request within the CPU limit is answered; one past it gets 546 WORKER_RESOURCE_LIMIT and a new worker", () =>
  withFixture({ cpuMs: 300 }, async (served, call) => {
    const fine = await call("op=burn&ms=50");
    assert.equal(fine.status, 200);
    await fine.body?.cancel();
    const before = served.pids.limits;
    const over = await call("op=burn&ms=5000");
    assert.equal(over.status, 546);
    assert.deepEqual(await over.json(), WORKER_RESOURCE_LIMIT);
    const { limits } = await served.stats();
    assert.deepEqual(limits!.kills, { cpu_time: 1, memory: 0, wall_clock: 0 });
    assert.equal(limits!.invocations, 2, "the killed invocation is counted");
    assert.ok(limits!.max_cpu_ms_per_invocation > 300, "and the CPU it had used");
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
      async () => (await served.stats()).limits!.kills.cpu_time === 1 || undefined,
      10_000,
    );
  }));

Deno.test("a worker past its memory limit gets 546 and a new worker", () =>
  withFixture({ memoryMb: 128 }, async (served, call) => {
    const fine = await call("op=hold&mb=16");
    assert.equal(fine.status, 200);
    await fine.body?.cancel();
    const over = await call("op=hold&mb=200");
    assert.equal(over.status, 546);
    assert.deepEqual(await over.json(), WORKER_RESOURCE_LIMIT);
    const { limits } = await served.stats();
    assert.deepEqual(limits!.kills, { cpu_time: 0, memory: 1, wall_clock: 0 });
    assert.ok(limits!.max_rss_mb > 128, `peak RSS ${limits!.max_rss_mb} MB`);
  }));

/** The worker (process id) that answered a call. */
async function answeredBy(call: (query: string) => Promise<Response>): Promise<number> {
  const res = await call("op=pid");
  assert.equal(res.status, 200);
  return (await res.json()).pid;
}

const alive = async (pid: number) => {
  try {
    await cpuMs(pid);
    return true;
  } catch {
    return false;
  }
};

// The worker lifecycle of supabase/edge-runtime (WORKER_LIFECYCLE in scripts/local/functions.ts):
// retired at half the wall clock, new requests to a new worker, dropped once idle, ended at the
// full wall clock whatever it runs. A 3 s wall clock stands for the free plan's 150 s.
Deno.test("at half the wall clock a worker is retired: new requests land on a new worker and the idle old one is dropped", () =>
  withFixture({ wallClockMs: 3_000 }, async (served, call) => {
    const first = await answeredBy(call);
    assert.equal(first, served.pids.limits);
    const next = await eventually("a request to land on a new worker", async () => {
      const pid = await answeredBy(call);
      return pid !== first ? pid : undefined;
    }, 20_000);
    await eventually("the retired worker to end", async () => !(await alive(first)) || undefined);
    const stats = await served.stats();
    assert.ok(stats.limits!.retirements.wall_clock >= 1, JSON.stringify(stats.limits));
    assert.ok(stats.limits!.early_drops >= 1, "dropped once idle, not killed");
    assert.deepEqual(stats.limits!.kills, { cpu_time: 0, memory: 0, wall_clock: 0 });
    assert.equal(stats.limits!.crashes, 0);
    assert.ok(stats.limits!.max_rss_mb_by_worker.length >= 2, "a peak per worker");
    assert.notEqual(next, first);
  }));

Deno.test("an idle retired worker is dropped and no other starts until a request comes, which boots one", () =>
  withFixture({ wallClockMs: 2_000 }, async (served, call) => {
    const first = await answeredBy(call);
    await eventually(
      "the idle worker to be dropped",
      async () => !(await alive(first)) || undefined,
    );
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(served.pids.limits, first, "no worker was started meanwhile");
    assert.deepEqual(await health(served), {
      status: 200,
      body: { ok: true, functions: { limits: "up" } },
    }, "callable: a request starts a worker");
    const next = await answeredBy(call);
    assert.notEqual(next, first);
    assert.equal(served.pids.limits, next);
    const { limits } = await served.stats();
    assert.ok(
      limits!.retirements.wall_clock >= 1 && limits!.early_drops >= 1,
      JSON.stringify(limits),
    );
  }));

Deno.test("a retired worker keeps running what it has until the full wall clock, then ends with a 546 for what is in flight", () =>
  withFixture({ wallClockMs: 3_000 }, async (served, call) => {
    const old = await answeredBy(call);
    const task = await call("op=background&ms=60000");
    assert.equal(task.status, 200, "answered before its task");
    await task.body?.cancel();
    const inFlight = call("op=wait&ms=60000");
    const fresh = await eventually("a request to land on a new worker", async () => {
      const pid = await answeredBy(call);
      return pid !== old ? pid : undefined;
    }, 20_000);
    assert.ok(await alive(old), "retired, still running its task and its request");
    const cut = await inFlight;
    assert.equal(cut.status, 546);
    assert.deepEqual(await cut.json(), WORKER_RESOURCE_LIMIT);
    assert.equal(await alive(old), false);
    const stats = await eventually("the old worker's work to be counted", async () => {
      const s = (await served.stats()).limits!;
      return s.running === 0 ? s : undefined;
    });
    assert.equal(stats.kills.wall_clock, 1, "ended at the wall clock, whatever it ran");
    assert.ok(stats.retirements.wall_clock >= 1);
    assert.ok(stats.invocations >= 4, "the task and the cut request are counted");
    assert.notEqual(fresh, old);
  }));

Deno.test("a worker past half its memory limit is dropped once idle and the next request gets a new worker", () =>
  withFixture({ memoryMb: 400 }, async (served, call) => {
    const first = await answeredBy(call);
    const below = await call("op=keep&mb=150");
    assert.equal(below.status, 200);
    await below.body?.cancel();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await answeredBy(call), first, "under half its memory, it stays");
    const held = await call("op=keep&mb=70");
    assert.equal(held.status, 200);
    await held.body?.cancel();
    await eventually("the worker to be dropped", async () => !(await alive(first)) || undefined);
    assert.notEqual(await answeredBy(call), first);
    const { limits } = await served.stats();
    assert.equal(limits!.retirements.memory, 1, JSON.stringify(limits));
    assert.equal(limits!.early_drops, 1);
    assert.deepEqual(limits!.kills, { cpu_time: 0, memory: 0, wall_clock: 0 });
    assert.ok(limits!.max_rss_mb_by_worker[0]! > 220, JSON.stringify(limits));
  }));

Deno.test("a job's default time budget, and what it spends after it, fit in the half wall clock a request may be left", () => {
  const env = (budget?: string) =>
    readEnv((name) =>
      ({
        SUPABASE_DB_URL: "postgresql://postgres@127.0.0.1:1/postgres",
        TOKEN_ENCRYPTION_KEYS: "k1:x",
        SUPABASE_SECRET_KEYS: JSON.stringify(["sb_secret_tEsTkEy0123456789abcdefGHIJKLMNOPqrstuv"]),
        TETHER_TIME_BUDGET_MS: budget,
      })[name]
    );
  // A request can land on a worker just before it is retired at half the wall clock; the worker
  // is ended at the full wall clock, so the request has the other half.
  const left = EDGE_WALL_CLOCK_MS / 2;
  assert.equal(EDGE_WALL_CLOCK_MS, 150_000, "the free plan's, as the gateway enforces by default");
  assert.ok(env().timeBudgetMs + AFTER_BUDGET_MS <= left, JSON.stringify(TIME_BUDGET_MS));
  assert.equal(env(String(TIME_BUDGET_MS.max)).timeBudgetMs, TIME_BUDGET_MS.max);
  assert.ok(TIME_BUDGET_MS.max + AFTER_BUDGET_MS <= left);
  assert.throws(() => env(String(TIME_BUDGET_MS.max + 1)), EnvError);
  assert.throws(() => env("100000"), EnvError, "the old default would outlive its worker");
});

/** The gateway's figures as GET /_stats serves them. */
async function servedStats(served: FunctionsServer): Promise<FunctionStats> {
  const res = await fetch(`${served.url}/_stats`);
  assert.equal(res.status, 200);
  return (await res.json()).functions.limits;
}

Deno.test("the gateway counts each invocation and the CPU it used, its background tasks included, at /_stats", () =>
  withFixture({}, async (served, call) => {
    const warmup = await call("op=burn&ms=1");
    await warmup.body?.cancel();
    const reset = await fetch(`${served.url}/_stats`, { method: "DELETE" });
    assert.equal(reset.status, 200);
    assert.equal((await reset.json()).functions.limits.invocations, 0);
    // What the worker really spent, read from /proc here, one invocation at a time. The fixture
    // cannot count its own CPU (the Edge Runtime's Deno answers process.cpuUsage() with zeros), so
    // the test does. The gateway charges an invocation all its worker spent meanwhile, give or
    // take a few 10 ms ticks.
    const TICKS = 30;
    const pid = served.pids.limits!;
    const spent = async (query: string, invocations: number) => {
      const before = await cpuMs(pid);
      const res = await call(query);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const stats = await eventually("the invocation to end", async () => {
        const s = await servedStats(served);
        return s.invocations === invocations && s.running === 0 ? s : undefined;
      }, 30_000);
      return { cpu: (await cpuMs(pid)) - before, stats };
    };

    const first = await spent("op=work&units=2000", 1);
    assert.ok(first.cpu > 2 * TICKS, `the work spent CPU: ${first.cpu} ms`);
    assert.ok(first.stats.max_cpu_ms_per_invocation >= first.cpu - TICKS, JSON.stringify(first));
    const second = await spent("op=work&units=500", 2);
    assert.ok(
      second.stats.max_cpu_ms_per_invocation <= Math.max(first.cpu, second.cpu) + TICKS,
      "the most one used, not their sum",
    );
    // The function's CPU total grows by what /proc saw the worker spend (what benches divide).
    assert.ok(
      Math.abs(second.stats.cpu_ms - first.stats.cpu_ms - second.cpu) <= 2 * TICKS,
      JSON.stringify({ first, second }),
    );

    // The same work before the answer and after it, in a background task that starts once the
    // answer is in: one invocation, still running after its answer, charged both halves (each
    // alone would be about half).
    const dir = await Deno.makeTempDir();
    try {
      const go = join(dir, "go");
      const before = await cpuMs(pid);
      const res = await call(`op=work&units=1500&then=1500&after=${encodeURIComponent(go)}`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const open = await servedStats(served);
      assert.deepEqual([open.invocations, open.running], [2, 1], "answered, not ended");
      await Deno.writeTextFile(go, "");
      const split = await eventually("the background task to end", async () => {
        const s = await servedStats(served);
        return s.invocations === 3 && s.running === 0 ? s : undefined;
      }, 30_000);
      const cpu = (await cpuMs(pid)) - before;
      assert.ok(cpu > 4 * TICKS, `the work spent CPU: ${cpu} ms`);
      assert.ok(split.max_cpu_ms_per_invocation >= cpu - TICKS, JSON.stringify({ cpu, split }));
      assert.deepEqual(split.kills, { cpu_time: 0, memory: 0, wall_clock: 0 });
      assert.equal(split.crashes, 0);
      assert.ok(split.max_rss_mb > 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
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
