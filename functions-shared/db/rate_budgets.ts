// tether.rate_budgets: each connection's rate-limit bucket, kept in Postgres so that every
// function instance calling the provider draws from the same one (the pacers of deployed
// functions, functions-shared/providers/pacing.ts `BudgetStore`).
//
// Every provider page sends these two statements, so they go as simple queries, their values
// written into the text: one round trip each. Bound as parameters, postgres.js (prepared
// statements off, db/client.ts) first has Postgres describe the unnamed statement and then runs
// it: two round trips, and on the Edge Runtime's Deno each round trip costs the worker about
// 0.4 ms of CPU (`npm run bench -- sync`). Only checked values are ever written in: the
// connection's UUID and finite numbers.
import type { Sql } from "./client.ts";
import type { BucketModel, BudgetStore } from "../providers/pacing.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A connection id as a SQL literal; anything but a UUID is refused. */
function uuid(id: string): string {
  if (!UUID.test(id)) throw new TypeError("a rate budget's key must be a connection's UUID");
  return `'${id}'::uuid`;
}

/** A number as a SQL literal (null when absent); NaN and infinities are refused. */
function float(x: number | null | undefined): string {
  if (x === null || x === undefined) return "null";
  if (!Number.isFinite(x)) throw new TypeError(`a rate budget's figure must be finite, not ${x}`);
  return `(${x})::float8`;
}

export function postgresBudgets(sql: Sql): BudgetStore {
  return {
    async take(connectionId: string, cost: number, model: BucketModel, reserve: number) {
      const [row] = await sql.unsafe<[{ wait_ms: number }]>(
        `select tether.take_rate_budget(${uuid(connectionId)}, ${float(cost)}, ${
          float(model.capacity)
        }, ${float(model.restorePerSecond)}, ${float(reserve)}) as wait_ms`,
      );
      return row.wait_ms;
    },
    async adjust(connectionId, model, reserve, change) {
      await sql.unsafe(
        `select tether.adjust_rate_budget(${uuid(connectionId)}, ${float(model.capacity)}, ${
          float(model.restorePerSecond)
        }, ${float(reserve)}, ${float(change.available)}, ${float(change.refund)}, ${
          float(change.backOffMs)
        }, ${float(change.capacity)}, ${float(change.restorePerSecond)})`,
      );
    },
  };
}
