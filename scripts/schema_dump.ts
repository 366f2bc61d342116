// npm run schema:dump: rewrites supabase/schema.sql from the migrations (see
// scripts/local/schema_dump.ts), bringing the local stack up for it if it is not.
import { writeFile } from "node:fs/promises";
import { relative } from "node:path";
import { dumpMigratedSchema, SCHEMA_FILE } from "./local/schema_dump.ts";
import { withStack } from "./local/stack.ts";
import { paths, StackError } from "./local/util.ts";

try {
  const schema = await withStack(() => dumpMigratedSchema());
  await writeFile(SCHEMA_FILE, schema);
  console.log(`Wrote ${relative(paths.root, SCHEMA_FILE)} (${schema.split("\n").length} lines).`);
} catch (err) {
  if (!(err instanceof StackError)) throw err;
  console.error(`schema:dump: ${err.message}`);
  Deno.exit(1);
}
