// The pacing bench case (scripts/bench/pacing.ts) runs at a tiny size and gives every key
// bench/results.json expects of it: per provider and for the shared connection, `limit_use_pct`
// and `throttled`. No figure is judged here (the machine's speed is the bench's business).
import assert from "node:assert/strict";
import { benchPacing } from "../scripts/bench/pacing.ts";

Deno.test("bench pacing: a 3-second run reports limit_use_pct and throttled per provider", async () => {
  const lines: string[] = [];
  const result = await benchPacing((line) => lines.push(line), { seconds: 3 });
  assert.equal(result.case, "pacing");
  assert.deepEqual(Object.keys(result.pacing).sort(), [
    "lightspeed",
    "maystro",
    "quickbooks",
    "shared_connection",
    "shiphero",
    "shopify",
  ]);
  for (const [name, figures] of Object.entries(result.pacing)) {
    assert.equal(typeof figures!.limit_use_pct, "number", `${name} limit_use_pct`);
    assert.ok(Number.isFinite(figures!.limit_use_pct), `${name} limit_use_pct is a number`);
    assert.equal(typeof figures!.throttled, "number", `${name} throttled`);
    assert.ok(figures!.requests > 0, `${name} made requests`);
    assert.ok(figures!.records > 0, `${name} stored records`);
  }
  assert.equal(typeof result.max_cpu_ms_per_invocation, "number");
  assert.ok(lines.some((l) => l.startsWith("shared_connection:")), "it said what it measured");
});
