// One case's world: its own database cloned from the migrated template, its own in-process
// provider sandbox, and the functions it serves; all torn down when the case ends.
import { startSandbox } from "../../sandbox/server.ts";
import { createTestDatabase, serveFunctionsFor, type TestDatabase } from "../local/harness.ts";
import { SandboxControl } from "../local/sandbox_control.ts";

export interface BenchWorld {
  db: TestDatabase;
  sandbox: SandboxControl;
  /** Serves these functions against the case's database (stopped with the world). */
  serve(
    names: string[],
    opts?: { env?: Record<string, string> },
  ): ReturnType<typeof serveFunctionsFor>;
}

export async function withBenchWorld<T>(fn: (w: BenchWorld) => Promise<T>): Promise<T> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const served: Awaited<ReturnType<typeof serveFunctionsFor>>[] = [];
  try {
    return await fn({
      db,
      sandbox: new SandboxControl(server.url),
      async serve(names, opts) {
        const functions = await serveFunctionsFor(db, names, opts);
        served.push(functions);
        return functions;
      },
    });
  } finally {
    for (const functions of served) await functions.stop();
    await server.close();
    await db.drop();
  }
}
