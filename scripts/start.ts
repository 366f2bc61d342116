// npm start: brings up the local stack (PostgreSQL + pg_cron, stand-ins,
// migrations, functions, sandboxes, pg_net worker) in this process, installs
// the pg_cron schedules, prints where everything is, and stays up until
// Ctrl-C, then stops what it started.
import { join } from "node:path";
import { isRunning, psql, stopCluster } from "./local/postgres.ts";
import { stackUp } from "./local/stack.ts";
import { paths, StackError } from "./local/util.ts";

const databaseWasRunning = await isRunning();
let stopServers: (() => Promise<void>) | undefined;

async function shutdown(code: number): Promise<never> {
  console.log("\nStopping...");
  await stopServers?.();
  if (!databaseWasRunning) await stopCluster();
  Deno.exit(code);
}

try {
  const { info, stop } = await stackUp({ foreground: true, log: (l) => console.log(l) });
  stopServers = stop;
  await psql("postgres", { file: join(paths.root, "sql", "schedules.sql") });
  console.log(`
Tether is running on the local stack.

  Database        ${info.DATABASE_URL}
  Functions       ${info.FUNCTIONS_URL}/<name>   (secret key: SERVICE_KEY in .tether/stack.env)
  Sandboxes       ${info.SANDBOX_URL}
  Schedules       sql/schedules.sql installed in pg_cron

From another terminal:
  npm run tether -- status
  psql ${info.DATABASE_URL} -c 'select refresh_tokens()'

Ctrl-C stops everything npm start started.`);
  Deno.addSignalListener("SIGINT", () => shutdown(0));
  Deno.addSignalListener("SIGTERM", () => shutdown(0));
} catch (err) {
  if (!(err instanceof StackError)) throw err;
  console.error(`npm start: ${err.message}`);
  await shutdown(1);
}
