// A backfill worker in its own process, for tests that kill one mid-page (SIGKILL: no cleanup).
// Env: TETHER_TEST_DB_URL, TETHER_TEST_BACKFILL.
import { connect } from "../../functions-shared/db/client.ts";
import { runBackfill } from "../../functions-shared/jobs/backfill.ts";
import { testDeps } from "./stack.ts";

const url = Deno.env.get("TETHER_TEST_DB_URL")!;
const sql = connect(url, { max: 2, name: "tether-backfill-worker" });
const deps = await testDeps({ name: "worker", url, sql, drop: () => sql.end() });
await runBackfill(deps, { backfill_id: Deno.env.get("TETHER_TEST_BACKFILL")! }, { pageSize: 250 });
await sql.end();
