// `npm run tether -- backfill start|status|list|cancel`.
import { createClient, FunctionsFetchError, FunctionsHttpError } from "@supabase/supabase-js";
import type { Sql } from "../../functions-shared/db/client.ts";
import {
  checkUuid,
  CliError,
  printResult,
  table,
  type Target,
  UsageError,
  withDb,
} from "./common.ts";
import { bar } from "./health.ts";

export const BACKFILL_HELP = "backfill start <connection> <stream> <from> <to> [--json]\n" +
  "  Starts a backfill (dates: ISO 8601 with an offset, e.g. 2026-01-29T00:00:00Z) and shows its\n" +
  "  progress until done; Ctrl-C leaves it running.\n" +
  "backfill status [<id>] [--json]   The backfill's progress (default: the newest).\n" +
  "backfill list [--json]            Every backfill, newest first.\n" +
  "backfill cancel <id> [--json]     Cancels it: the worker stops at its next page.";

interface BackfillView {
  id: string;
  provider: string;
  name: string;
  stream: string;
  range_start: Date;
  range_end: Date;
  status: string;
  windows_done: number;
  records_count: number;
  percent: string;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

async function backfillRows(sql: Sql, id: string | null, limit: number): Promise<BackfillView[]> {
  return await sql<BackfillView[]>`
    select b.id, c.provider, c.name, b.stream, b.range_start, b.range_end, b.status,
           b.windows_done, b.records_count,
           case when b.status = 'succeeded' then 100.0
                else round(100.0 * extract(epoch from (coalesce(b.covered_until, b.range_start)
                       - b.range_start)) / extract(epoch from (b.range_end - b.range_start)), 1)
           end::text as percent,
           b.last_error, b.created_at, b.finished_at
      from tether.backfills b join tether.connections c on c.id = b.connection_id
     where (${id}::uuid is null or b.id = ${id})
     order by b.created_at desc limit ${limit}`;
}

function progressLine(row: BackfillView): string {
  const pct = Number(row.percent);
  return `${bar(pct)} ${pct.toFixed(1)}% windows ${row.windows_done.toLocaleString("en-US")} ` +
    `records ${row.records_count.toLocaleString("en-US")} ${row.status}`;
}

export async function backfillCommand(t: Target, args: string[], json: boolean): Promise<void> {
  const [sub, ...rest] = args;
  const usage = `usage: npm run tether -- ${BACKFILL_HELP}`;
  const print = (data: unknown, human: () => string) => printResult(json, data, human);
  if (!sub) throw new UsageError(usage);
  if (!["start", "status", "list", "cancel"].includes(sub)) {
    throw new UsageError(`unknown backfill command "${sub}": start, status, list or cancel`);
  }
  if (sub === "start") {
    const [connection, stream, from, to] = rest;
    if (!connection || !stream || !from || !to) throw new UsageError(usage);
    checkUuid(connection, "<connection>");
  }
  if ((sub === "status" || sub === "cancel") && rest[0]) {
    checkUuid(rest[0], "<id>", "backfill list");
  }
  if (sub === "cancel" && !rest[0]) throw new UsageError(usage);

  await withDb(t, async (sql) => {
    switch (sub) {
      case "start": {
        const [connection, stream, from, to] = rest as [string, string, string, string];
        // The function validates the dates (ISO 8601 with an offset) and the request (the same
        // SQL as start_backfill()), creates the job and works on it; it continues by itself.
        const client = createClient(t.supabaseUrl, t.serviceKey, {
          auth: { persistSession: false },
        });
        const body = { connection_id: connection, stream, range_start: from, range_end: to };
        const started = client.functions.invoke("backfill", { body });
        // The first invocation runs for up to its time budget: find the job as soon as it exists.
        let id: string | undefined;
        let failed: unknown;
        started.then(async ({ data, error }) => {
          if (error instanceof FunctionsFetchError) {
            failed = new CliError(
              `the backfill function at ${t.supabaseUrl} is not answering: is the stack up? ` +
                "run `npm run stack:up`",
            );
          } else if (error instanceof FunctionsHttpError) {
            const detail = await (error.context as Response).json().catch(() => null);
            failed = new CliError(`backfill: ${detail?.message ?? error.message}`);
          } else if (error) failed = new CliError(`backfill: ${error.message}`);
          else id ??= data.backfill_id;
        });
        while (!id) {
          if (failed) throw failed;
          const [row] = await sql<{ id: string }[]>`
            select id from tether.backfills
             where connection_id = ${connection} and stream = ${stream}
               and range_start = ${from}::timestamptz and range_end = ${to}::timestamptz
             order by created_at desc limit 1`.catch(() => []);
          if (row) id = row.id;
          else await new Promise((r) => setTimeout(r, 200));
        }
        if (!json) console.error(`backfill ${id} started (Ctrl-C leaves it running)`);
        Deno.addSignalListener("SIGINT", () => {
          console.error(`\nleft running: npm run tether -- backfill status ${id}`);
          Deno.exit(130);
        });
        const tty = Deno.stderr.isTerminal();
        while (true) {
          const [row] = await backfillRows(sql, id, 1);
          if (!row) throw new CliError(`backfill ${id} disappeared`);
          if (!json && tty) {
            Deno.stderr.writeSync(new TextEncoder().encode(`\r${progressLine(row)}   `));
          }
          if (!["pending", "running"].includes(row.status)) {
            if (!json && tty) console.error("");
            print(row, () => `${progressLine(row)}\n${table([{ ...row }])}`);
            if (row.status !== "succeeded") {
              throw new CliError(
                `backfill ${id} ended ${row.status}${row.last_error ? `: ${row.last_error}` : ""}`,
              );
            }
            return;
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      case "status": {
        const id = rest[0] ?? null;
        const rows = await backfillRows(sql, id, 1);
        if (rows.length === 0) {
          throw new CliError(
            id
              ? `no backfill ${id}: list them with \`npm run tether -- backfill list\``
              : "no backfills yet: start one with `npm run tether -- backfill start …`",
          );
        }
        print(rows[0], () => `${progressLine(rows[0]!)}\n${table([{ ...rows[0]! }])}`);
        return;
      }
      case "list": {
        const rows = await backfillRows(sql, null, 1000);
        print(rows, () => table(rows.map((r) => ({ ...r }))));
        return;
      }
      case "cancel": {
        const id = rest[0]!;
        const [row] = await sql<{ status: string }[]>`
          select public.cancel_backfill(${id}) as status`.catch((err) => {
          throw new CliError(
            `${err.message}: list them with \`npm run tether -- backfill list\``,
          );
        });
        const status = row!.status;
        print(
          { id, status, already_finished: status !== "cancelled" },
          () =>
            status === "cancelled"
              ? `backfill ${id}: cancelled`
              : `backfill ${id} had already finished (${status}): nothing to cancel`,
        );
        return;
      }
    }
  });
}
