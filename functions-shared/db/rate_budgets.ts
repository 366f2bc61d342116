// tether.rate_budgets: each connection's rate-limit bucket, kept in Postgres so that every
// function instance calling the provider draws from the same one (the pacers of deployed
// functions, functions-shared/providers/pacing.ts `BudgetStore`).
import type { Sql } from "./client.ts";
import type { BucketModel, BudgetStore } from "../providers/pacing.ts";

export function postgresBudgets(sql: Sql): BudgetStore {
  return {
    async take(connectionId: string, cost: number, model: BucketModel, reserve: number) {
      const [row] = await sql<[{ wait_ms: number }]>`
        select tether.take_rate_budget(${connectionId}, ${cost}, ${model.capacity},
                                       ${model.restorePerSecond}, ${reserve}) as wait_ms`;
      return row.wait_ms;
    },
    async adjust(connectionId, model, reserve, change) {
      await sql`
        select tether.adjust_rate_budget(${connectionId}, ${model.capacity},
                 ${model.restorePerSecond}, ${reserve}, ${change.available ?? null},
                 ${change.refund ?? null}, ${change.backOffMs ?? null},
                 ${change.capacity ?? null}, ${change.restorePerSecond ?? null})`;
    },
  };
}
