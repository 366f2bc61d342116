// supabase/schema.sql is what the migrations add up to: a dump of a freshly migrated database,
// normalised, must equal the committed file to the byte. And a local database whose history is
// not this checkout's is refused before the Supabase CLI's misleading repair hint.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dumpMigratedSchema, SCHEMA_FILE } from "../scripts/local/schema_dump.ts";
import { createTestDatabase } from "../scripts/local/harness.ts";
import { loadOrCreateSecrets } from "../scripts/local/secrets.ts";
import { prepareDatabase, stackConfig } from "../scripts/local/stack.ts";
import { StackError } from "../scripts/local/util.ts";

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

Deno.test("a local database with migrations this checkout lacks is refused with how to start afresh", async () => {
  const db = await createTestDatabase();
  try {
    const cfg = stackConfig();
    const secrets = await loadOrCreateSecrets();
    // A clone of the migrated template: its history is this checkout's, so it is brought up to date.
    await prepareDatabase(cfg, secrets, db.name);
    // A version from another checkout (Tether's development migrations before the 0.1 baseline).
    await db.sql`insert into supabase_migrations.schema_migrations (version, name)
                 values ('20261122000000', 'tether_schema')`;
    await assert.rejects(
      () => prepareDatabase(cfg, secrets, db.name),
      (err: Error) => {
        assert.ok(err instanceof StackError);
        assert.match(err.message, /holds 1 migration\(s\) that supabase\/migrations does not/);
        assert.match(err.message, /20261122000000/);
        assert.match(err.message, /npm run stack:down && rm -rf /);
        return true;
      },
    );
  } finally {
    await db.drop();
  }
});

Deno.test("every migration has its own version (two branches can pick the same timestamp)", () => {
  const files = [...Deno.readDirSync(new URL("../supabase/migrations/", import.meta.url))]
    .map((e) => e.name).filter((n) => n.endsWith(".sql")).sort();
  const seen = new Map<string, string>();
  for (const file of files) {
    const version = file.match(/^(\d{14})_[a-z0-9_]+\.sql$/)?.[1];
    assert.ok(version, `${file}: expected <14-digit version>_<name>.sql`);
    assert.ok(!seen.has(version), `${file} and ${seen.get(version)} share version ${version}`);
    seen.set(version, file);
  }
});
