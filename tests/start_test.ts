// `npm start -- --once` end to end, from a fresh stack: its own state directory and ports, so it
// creates its own PostgreSQL cluster, applies the migrations, serves the functions and the
// sandboxes, registers one demo connection per provider through `connect`, runs one full cycle
// and stops everything it started. It must exit 0 with every connection healthy.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { paths } from "../scripts/local/util.ts";
import { stopStrayCluster } from "../scripts/local/postgres.ts";
import { runWithPrivateStack } from "./helpers/stack.ts";

Deno.test("npm start -- --once from a fresh stack exits 0 with every connection healthy", async () => {
  const state = join(paths.state, `start-test-${crypto.randomUUID().slice(0, 8)}`);
  const started = Date.now();
  try {
    const out = await runWithPrivateStack("start.ts", ["--once"], state);
    const { stdout, stderr } = out;
    const seconds = (Date.now() - started) / 1000;
    assert.equal(
      out.code,
      0,
      `exit code after ${seconds} s; stdout:\n${stdout}\nstderr:\n${stderr}`,
    );
    assert.match(stdout, /Registered 5 demo connections through the connect function/);
    assert.match(stdout, /backfill: Demo Shopify, 3 days\s+succeeded/);
    assert.match(stdout, /webhook events\s+\d+ processed\s/);
    assert.match(stdout, /All 5 connections healthy\./);
    // The table: one line per provider, each active with no last error.
    for (const name of ["ShipHero", "Shopify", "Lightspeed", "QuickBooks", "Maystro"]) {
      const line = stdout.split("\n").find((l) => l.includes(`Demo ${name} `));
      assert.ok(line, `a line for Demo ${name}:\n${stdout}`);
      assert.match(line, /\sactive\s/, `Demo ${name} is active: ${line}`);
      assert.match(line, /\s-$/, `Demo ${name} has no last error: ${line}`);
    }
    // Everything it started is stopped: its cluster is down.
    assert.equal(existsSync(join(state, "pg", "data", "postmaster.pid")), false, "cluster stopped");
  } finally {
    await stopStrayCluster(join(state, "pg", "data"));
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
});
