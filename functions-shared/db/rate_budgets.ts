// tether.rate_budgets: each connection's rate-limit bucket, kept in Postgres so that every
// function instance calling the provider draws from the same one (the pacers of deployed
// functions, functions-shared/providers/pacing.ts `BudgetStore`). Every provider page sends these
// two statements, so they go as simple queries, their checked values written in (./literals.ts).
import type { Sql } from "./client.ts";
import { floatLiteral as float, uuidLiteral as uuid } from "./literals.ts";
import type { BucketModel, BudgetStore } from "../providers/pacing.ts";

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
