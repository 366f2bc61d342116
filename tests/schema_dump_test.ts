// supabase/schema.sql is what the migrations add up to: a dump of a freshly migrated database,
// normalised, must equal the committed file to the byte.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dumpMigratedSchema, SCHEMA_FILE } from "../scripts/local/schema_dump.ts";

Deno.test("supabase/schema.sql matches what the migrations produce", async () => {
  const fromMigrations = await dumpMigratedSchema();
  const committed = await readFile(SCHEMA_FILE, "utf8");
  if (fromMigrations === committed) return;
  const a = committed.split("\n");
  const b = fromMigrations.split("\n");
  let line = 0;
  while (line < a.length && a[line] === b[line]) line++;
  assert.fail(
    `supabase/schema.sql differs from the migrated schema from line ${line + 1}:\n` +
      `  committed:       ${a[line] ?? "(end of file)"}\n` +
      `  from migrations: ${b[line] ?? "(end of file)"}\n` +
      "Regenerate it with `npm run schema:dump` and commit the result with the migration.",
  );
});
