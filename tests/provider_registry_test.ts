// The SQL migrations repeat the provider list; these tests keep them equal to the registry.
import assert from "node:assert/strict";
import { adapters } from "../functions-shared/providers/registry.ts";
import { PROVIDERS } from "../functions-shared/providers/types.ts";
import { withTestDatabase } from "./helpers/stack.ts";

function listed(def: string): string[] {
  return [...def.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!).sort();
}

Deno.test("every provider_is_known constraint lists exactly PROVIDERS", () =>
  withTestDatabase(async (db) => {
    const rows = await db.sql<{ def: string }[]>`
      select pg_get_constraintdef(oid) as def from pg_constraint
       where conname like '%provider_is_known%'`;
    assert.ok(rows.length > 0);
    for (const { def } of rows) assert.deepEqual(listed(def), [...PROVIDERS].sort(), def);
  }));

Deno.test("tether.backfill_streams() equals each adapter's streams", () =>
  withTestDatabase(async (db) => {
    for (const provider of PROVIDERS) {
      const [row] = await db.sql<{ streams: string[] }[]>`
        select tether.backfill_streams(${provider}) as streams`;
      assert.deepEqual(
        [...row!.streams].sort(),
        Object.keys(adapters[provider].streams).sort(),
        provider,
      );
    }
  }));
