// A test's world for webhook deliveries: its own database, its own provider sandbox, and the
// webhooks function served against that database (through the local gateway, as providers reach
// it). What the conformance, webhook and change-feed tests share.
import { startSandbox } from "../../sandbox/server.ts";
import type { BucketModel } from "../../functions-shared/providers/pacing.ts";
import type { ProviderName } from "../../functions-shared/providers/types.ts";
import { SandboxControl } from "./sandbox.ts";
import { createTestDatabase, serveFunctionsFor, type TestDatabase, testDeps } from "./stack.ts";

export interface WebhookWorld {
  /** The served webhooks function: `${hooks}/<provider>`. */
  hooks: string;
  sandbox: SandboxControl;
  db: TestDatabase;
  deps: Awaited<ReturnType<typeof testDeps>>;
}

/** Runs `fn` in a fresh world; `limits` widens providers' rate buckets for bulk re-fetches. */
export async function withWebhookWorld(
  fn: (w: WebhookWorld) => Promise<void>,
  limits: Partial<Record<ProviderName, BucketModel>> = {},
): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  const served = await serveFunctionsFor(db, ["webhooks"]);
  try {
    const sandbox = new SandboxControl(running.url);
    if (Object.keys(limits).length > 0) {
      await sandbox.call("POST", "/config", {
        limits: Object.fromEntries(
          Object.entries(limits).map((
            [provider, b],
          ) => [provider, { capacity: b.capacity, restore_per_second: b.restorePerSecond }]),
        ),
      });
    }
    await fn({ hooks: `${served.functionsUrl}/webhooks`, sandbox, db, deps: await testDeps(db) });
  } finally {
    await served.stop();
    await running.close();
    await db.drop();
  }
}
