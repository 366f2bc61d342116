// npm test: brings the local stack up (installing what is missing), runs the
// static checks (deno fmt --check, deno lint, deno check on every entry
// point), then every test against the stack, and ends with the plain line
// `N passed, M failed`. Arguments narrow the test run: npm test -- tests/vault_test.ts
// `npm test -- --pg-net` runs the pg_net tier: the tests of what goes through pg_net and Vault,
// against whichever the stack runs (the real extensions when its PostgreSQL has them:
// TETHER_PGNET, README "The real pg_net and Vault").
import { type StackInfo, withStack } from "./local/stack.ts";
import { paths, StackError } from "./local/util.ts";

const deno = Deno.execPath();

/** The pg_net tier: every test that sends through pg_net or reads Vault, and their privileges. */
const PG_NET_TIER = [
  "tests/pg_net_test.ts",
  "tests/pipeline_test.ts",
  "tests/schedules_test.ts",
  "tests/refresh_test.ts",
  "tests/sync_test.ts",
  "tests/webhooks_test.ts",
  "tests/backfill_test.ts",
  "tests/notifications_test.ts",
  "tests/schema_test.ts",
  "tests/stack_test.ts",
];
let passed = 0;
let failed = 0;

/** One static check: counted as one pass or one failure, its output shown only on failure. */
async function step(name: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(deno, {
    args,
    cwd: paths.root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const ok = out.code === 0;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  if (!ok) console.log(output.trimEnd());
  ok ? passed++ : failed++;
}

async function checksAndTests(info: StackInfo): Promise<void> {
  console.log(`pg_net and Vault: ${info.TETHER_PGNET}`);
  await step("deno fmt --check", ["fmt", "--check"]);
  await step("deno lint", ["lint"]);
  await step("deno check (entry points, shared code, scripts, sandbox, tests)", [
    "check",
    "supabase/functions/",
    "functions-shared/",
    "scripts/",
    "sandbox/",
    "tests/",
  ]);

  const targets = Deno.args.flatMap((arg) => arg === "--pg-net" ? PG_NET_TIER : [arg]);
  if (targets.length === 0) targets.push("tests/");
  console.log(`\ndeno test ${targets.join(" ")}`);
  const test = new Deno.Command(deno, {
    args: ["test", "-A", "--parallel", ...targets],
    cwd: paths.root,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  let tail = "";
  for await (const chunk of test.stdout.pipeThrough(new TextDecoderStream())) {
    Deno.stdout.writeSync(new TextEncoder().encode(chunk));
    tail = (tail + chunk).slice(-4000);
  }
  const status = await test.status;
  const summary = tail.match(/\| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/);
  if (summary) {
    passed += Number(summary[1]);
    failed += Number(summary[2]);
  }
  if (!status.success && (!summary || Number(summary[2]) === 0)) failed++; // crashed runner
}

try {
  console.log("Bringing up the local stack...");
  await withStack(checksAndTests);
} catch (err) {
  if (!(err instanceof StackError)) throw err;
  console.error(`The local stack could not start: ${err.message}`);
  failed++;
}

console.log(`\n${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
