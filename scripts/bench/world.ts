// One case's world: its own database cloned from the migrated template, its own in-process
// provider sandbox, and the functions it serves through the local gateway, under the Edge
// Runtime's limits (scripts/local/functions.ts); all torn down when the case ends. What the
// gateway measured of the case's invocations is added to its result: every case reports the most
// CPU time one invocation used (the Edge Runtime ends one past 2,000 ms), so a case must run its
// work through served functions, never call a job in-process (its setup included: connections are
// registered through the connect function).
import type { z } from "zod";
import type { ConnectInput, ConnectResult } from "../../functions-shared/jobs/connect.ts";
import { startSandbox } from "../../sandbox/server.ts";
import type { FunctionStats } from "../local/functions.ts";
import { createTestDatabase, serveFunctionsFor, type TestDatabase } from "../local/harness.ts";
import { SandboxControl } from "../local/sandbox_control.ts";
import { waitFor } from "../local/util.ts";
import { type CaseResult, round } from "./report.ts";

export interface BenchWorld {
  db: TestDatabase;
  sandbox: SandboxControl;
  /** Serves these functions against the case's database (stopped with the world). */
  serve(
    names: string[],
    opts?: { env?: Record<string, string> },
  ): ReturnType<typeof serveFunctionsFor>;
  /** Registers a connection through the served connect function. */
  connect(input: z.input<typeof ConnectInput>): Promise<ConnectResult>;
}

/** What the gateway measured of a case's invocations. */
export interface GatewayFigures {
  /** The most CPU time one invocation used, its background tasks included (limit: 2,000 ms). */
  max_cpu_ms_per_invocation: number;
  /** The function that invocation ran. */
  max_cpu_function: string;
  /** The highest resident memory a function's worker reached (limit: 256 MB). */
  max_rss_mb: number;
  /** Invocations the gateway served in the case. */
  gateway_invocations: number;
  /** Workers ended for passing a limit (546 or the wall clock); 0 in a healthy run. */
  limit_kills: number;
  /** Each function's own figures (the case's setup, e.g. connect, included), by name. */
  by_function: Record<string, Omit<FunctionStats, "running">>;
}

/** Runs a case in a world of its own; its result gets the gateway's figures. */
export async function withBenchWorld<T extends CaseResult & GatewayFigures>(
  fn: (w: BenchWorld) => Promise<Omit<T, keyof GatewayFigures> & { case: T["case"] }>,
): Promise<T> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const served: Awaited<ReturnType<typeof serveFunctionsFor>>[] = [];
  const serve: BenchWorld["serve"] = async (names, opts) => {
    const functions = await serveFunctionsFor(db, names, opts);
    served.push(functions);
    return functions;
  };
  let connectFunction: ReturnType<typeof serve> | undefined;
  try {
    const result = await fn({
      db,
      sandbox: new SandboxControl(server.url),
      serve,
      async connect(input) {
        connectFunction ??= serve(["connect"]);
        const { functionsUrl, secretKey } = await connectFunction;
        const res = await fetch(`${functionsUrl}/connect`, {
          method: "POST",
          headers: { apikey: secretKey, "content-type": "application/json" },
          body: JSON.stringify(input),
        });
        const body = await res.json();
        if (!res.ok) throw new Error(`connect answered ${res.status}: ${body.error ?? "?"}`);
        return body as ConnectResult;
      },
    });
    // The case's name first, then the gateway's figures: the table lines them up.
    const { case: name, ...own } = result;
    return { case: name, ...await gatewayFigures(name, served), ...own } as unknown as T;
  } finally {
    for (const functions of served) await functions.stop();
    await server.close();
    await db.drop();
  }
}

/** The case's figures from its gateways' GET /_stats, once their background work has ended. */
async function gatewayFigures(name: string, gateways: { url: string }[]): Promise<GatewayFigures> {
  if (gateways.length === 0) throw new Error(`bench ${name} served no function`);
  const all: [string, FunctionStats][] = [];
  for (const { url } of gateways) {
    let stats: Record<string, FunctionStats> = {};
    await waitFor(`${name}'s background work to end`, async () => {
      const res = await fetch(`${url}/_stats`);
      stats = (await res.json() as { functions: Record<string, FunctionStats> }).functions;
      return Object.values(stats).every((s) => s.running === 0);
    }, 120_000);
    all.push(...Object.entries(stats));
  }
  const [fnName, worst] = all.reduce((a, b) =>
    b[1].max_cpu_ms_per_invocation > a[1].max_cpu_ms_per_invocation ? b : a
  );
  const sum = (f: (s: FunctionStats) => number) => all.reduce((n, [, s]) => n + f(s), 0);
  return {
    max_cpu_ms_per_invocation: Math.round(worst.max_cpu_ms_per_invocation),
    max_cpu_function: fnName,
    max_rss_mb: round(Math.max(...all.map(([, s]) => s.max_rss_mb)), 1),
    gateway_invocations: sum((s) => s.invocations),
    limit_kills: sum((s) => s.kills.cpu_time + s.kills.memory + s.kills.wall_clock),
    by_function: Object.fromEntries(
      all.map(([fn, { running: _, ...s }]) => [fn, {
        ...s,
        max_cpu_ms_per_invocation: Math.round(s.max_cpu_ms_per_invocation),
        max_rss_mb: round(s.max_rss_mb, 1),
      }]),
    ),
  };
}
