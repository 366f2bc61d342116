// npm start: brings up the local stack (PostgreSQL + pg_cron, stand-ins, migrations, functions,
// sandboxes, pg_net worker) in this process, installs the pg_cron schedules, registers one demo
// connection per provider through the `connect` function, and then runs with a live view of
// every connection while the sandboxes keep producing orders and customers; Ctrl-C stops what
// it started.
//
// npm start -- --once: the same, then one full cycle (refresh all, sync every stream, a small
// backfill, one signed webhook per provider), the table, and exit 0 only if every connection
// ends healthy.
import { join } from "node:path";
import { isRunning, psql, stopCluster } from "./local/postgres.ts";
import { stackUp } from "./local/stack.ts";
import { paths, StackError } from "./local/util.ts";
import { Demo, runOnce } from "./local/demo.ts";
import { clearScreen, draw, renderTable } from "./local/live_view.ts";

const USAGE = `usage: npm start [-- --once]

  (no option)  Bring up the local stack with the provider sandboxes, register one demo
               connection per provider, install the pg_cron schedules and show every
               connection live until Ctrl-C, which stops everything npm start started.
  --once       Run one full cycle instead (refresh all, sync all streams, a 3-day backfill,
               one signed webhook per provider), print the table, and exit 0 only if every
               connection ends healthy (1 otherwise).

Server logs go to .tether/start.log.`;

const args = Deno.args.filter((a) => a !== "--");
if (args.includes("--help") || args.includes("-h")) {
  console.log(USAGE);
  Deno.exit(0);
}
const unknown = args.filter((a) => a !== "--once");
if (unknown.length > 0) {
  console.error(`npm start: unknown option ${unknown[0]}\n\n${USAGE}`);
  Deno.exit(2);
}
const once = args.includes("--once");

// The servers' log lines (functions, pg_net worker) go to a file, so the view stays readable.
await Deno.mkdir(paths.state, { recursive: true });
const logPath = join(paths.state, "start.log");
const logFile = await Deno.open(logPath, { create: true, append: true });
const enc = new TextEncoder();
const log = (line: string) => {
  try {
    logFile.writeSync(enc.encode(`${new Date().toISOString()} ${line}\n`));
  } catch { /* closed while stopping */ }
};

const databaseWasRunning = await isRunning();
let stopServers: (() => Promise<void>) | undefined;
let demo: Demo | undefined;
const timers: ReturnType<typeof setInterval>[] = [];
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (stopping) return await new Promise<never>(() => {});
  stopping = true;
  for (const t of timers) clearInterval(t);
  if (!once) console.log("\nStopping...");
  await demo?.close().catch(() => {});
  await stopServers?.();
  if (!databaseWasRunning) await stopCluster();
  Deno.exit(code);
}

function step(text: string): void {
  console.log(text);
  log(text);
}

try {
  step(`Starting the local stack (server logs: ${logPath})...`);
  const { info, stop } = await stackUp({ foreground: true, log });
  stopServers = stop;
  Deno.addSignalListener("SIGINT", () => shutdown(once ? 130 : 0));
  Deno.addSignalListener("SIGTERM", () => shutdown(once ? 143 : 0));
  await psql("postgres", { file: join(paths.root, "sql", "schedules.sql") });
  step("pg_cron schedules installed (sql/schedules.sql).");

  demo = new Demo(info);
  const started = Date.now();
  const conns = await demo.register();
  step(
    `Registered ${conns.length} demo connections through the connect function ` +
      `(${((Date.now() - started) / 1000).toFixed(1)} s): ${conns.map((c) => c.name).join(", ")}.`,
  );

  if (once) {
    step("One full cycle:");
    const report = await runOnce(demo, step);
    console.log(`\n${renderTable(report.rows)}\n\n${report.activity.join("\n")}\n`);
    if (report.ok) {
      console.log(`All ${report.rows.length} connections healthy.`);
    } else {
      console.log(`Not healthy:\n${report.problems.map((p) => `  - ${p}`).join("\n")}`);
    }
    await shutdown(report.ok ? 0 : 1);
  }

  await live(demo, info);
} catch (err) {
  if (err instanceof StackError) {
    console.error(`npm start: ${err.message}`);
  } else {
    console.error(`npm start: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  }
  await shutdown(1);
}

async function live(demo: Demo, info: { DATABASE_URL: string; FUNCTIONS_URL: string }) {
  const tty = Deno.stdout.isTerminal();
  const activity = { changes: 0, webhooks: 0, lastError: "", initial: "running" };

  // A lively start: refresh and sync everything now and backfill a month of Shopify orders, all
  // through the functions; from then on pg_cron runs the schedules by itself.
  (async () => {
    await demo.refreshAll(false);
    await demo.sync("orders");
    await demo.sync("customers");
    const shopify = demo.connections.find((c) => c.provider === "shopify");
    if (shopify) await demo.startBackfill(shopify.id, "orders", 30);
    activity.initial = "done";
  })().catch((err) => {
    activity.initial = "failed";
    activity.lastError = String(err?.message ?? err);
  });

  // The producer: every 5 s each sandbox account gets a few new or changed records; every third
  // tick the changes are delivered as the providers' signed webhooks.
  let tick = 0;
  let producing = false;
  timers.push(setInterval(async () => {
    if (producing || stopping) return;
    producing = true;
    try {
      activity.changes += await demo.produce(3);
      if (++tick % 3 === 0) {
        for (const c of demo.connections) activity.webhooks += (await demo.deliver(c)).messages;
      }
    } catch (err) {
      activity.lastError = String((err as Error)?.message ?? err);
    } finally {
      producing = false;
    }
  }, 5000));

  const header = [
    "Tether on the local stack",
    `  database   ${info.DATABASE_URL}`,
    `  functions  ${info.FUNCTIONS_URL}/<name>   (key: SERVICE_KEY in .tether/stack.env)`,
    "  schedules  sql/schedules.sql in pg_cron: refresh, sync, backfills and webhook retries " +
    "every minute",
    `  logs       ${logPath}`,
  ];
  const redraw = async () => {
    if (stopping) return;
    const rows = await demo.health().catch(() => undefined);
    if (!rows || stopping) return;
    const summary = await demo.activity().catch((err) => [`(activity: ${err?.message ?? err})`]);
    if (stopping) return;
    draw({
      header,
      rows,
      footer: [
        ...summary,
        `Sandboxes: ${activity.changes.toLocaleString("en-US")} changes produced, ${
          activity.webhooks.toLocaleString("en-US")
        } webhooks delivered; first sync and backfill: ${activity.initial}.` +
        (activity.lastError ? `  Last producer error: ${activity.lastError.slice(0, 80)}` : ""),
        "From another terminal: npm run tether -- status | runs | sync | backfill list | schedules",
        "Ctrl-C stops everything npm start started.",
      ],
    });
  };
  if (tty) clearScreen();
  await redraw();
  timers.push(setInterval(redraw, tty ? 3000 : 15_000));
}
