// A sync worker in its own process, for tests that kill one mid-run (SIGKILL: no cleanup at all).
// Env: TETHER_TEST_DB_URL, TETHER_TEST_CONNECTION, TETHER_TEST_STREAM.
import { connect } from "../../functions-shared/db/client.ts";
import { runSync } from "../../functions-shared/jobs/sync.ts";
import type { StreamName } from "../../functions-shared/providers/types.ts";
import { testDeps } from "./stack.ts";

const url = Deno.env.get("TETHER_TEST_DB_URL")!;
const sql = connect(url, { max: 2, name: "tether-sync-worker" });
const deps = await testDeps({ name: "worker", url, sql, drop: () => sql.end() });
const stream = Deno.env.get("TETHER_TEST_STREAM") as StreamName;
await runSync(
  deps,
  stream,
  { connection_id: Deno.env.get("TETHER_TEST_CONNECTION"), force: true },
  {
    pageSize: 50,
  },
);
await sql.end();
