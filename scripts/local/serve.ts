// The long-running half of the local stack: the provider sandboxes, the Edge
// Functions behind their gateway, and the stand-in pg_net worker for the main
// database (with the real pg_net, its own worker serves it). Run in the background by `npm run stack:up` (scripts/local/stack.ts),
// or inside `npm start`. SIGTERM or SIGINT stops everything it started.
import { join } from "node:path";
import { startFunctions } from "./functions.ts";
import { startNetWorker } from "./net_worker.ts";
import { type PgNetMode, pgNetMode } from "./postgres.ts";
import { loadOrCreateSecrets, type LocalSecrets } from "./secrets.ts";
import { functionEnv, type StackConfig, stackConfig, stackInfo } from "./stack.ts";
import { paths } from "./util.ts";

export async function serveStack(
  cfg: StackConfig,
  secrets: LocalSecrets,
  pgNet: PgNetMode,
  log: (line: string) => void = (l) => console.log(`${new Date().toISOString()} ${l}`),
): Promise<{ stop: () => Promise<void> }> {
  const info = stackInfo(cfg, secrets, pgNet);
  const sandbox = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(paths.root, "sandbox", "main.ts"),
      "--port",
      String(cfg.sandboxPort),
      "--exit-with-stdin",
      "yes",
    ],
    cwd: paths.root,
    // Held open while this process lives: if it dies, the sandbox goes too and frees its port.
    stdin: "piped",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const functions = await startFunctions({
    port: cfg.functionsPort,
    env: {
      ...functionEnv(secrets, { databaseUrl: info.DATABASE_URL, supabaseUrl: info.SUPABASE_URL }),
      // OAuth from the local stack signs in at the sandboxes, not at the real providers.
      SHOPIFY_BASE_URL: `${info.SANDBOX_URL}/shopify`,
      LIGHTSPEED_BASE_URL: `${info.SANDBOX_URL}/lightspeed`,
      QUICKBOOKS_BASE_URL: `${info.SANDBOX_URL}/quickbooks`,
    },
    jwks: secrets.jwks,
    log,
  });
  const net = pgNet === "standin"
    ? await startNetWorker({ databaseUrl: info.DATABASE_URL, log })
    : undefined;
  log(`functions at ${functions.functionsUrl}, sandboxes at ${info.SANDBOX_URL}`);
  return {
    async stop() {
      await net?.stop();
      await functions.stop();
      try {
        sandbox.kill("SIGTERM");
      } catch { /* already gone */ }
      await sandbox.status;
    },
  };
}

if (import.meta.main) {
  // stack:up passes the mode it resolved in TETHER_PGNET.
  const { stop } = await serveStack(stackConfig(), await loadOrCreateSecrets(), await pgNetMode());
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", shutdown);
  Deno.addSignalListener("SIGINT", shutdown);
}
