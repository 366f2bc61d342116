// Functions can be pointed at Supabase's pooler: TETHER_DB_URL beside SUPABASE_DB_URL (which
// Supabase sets to the direct connection, and whose SUPABASE_ prefix a user cannot set), with a
// per-worker connection count sized for it (#13).
import assert from "node:assert/strict";
import { createDeps } from "../functions-shared/deps.ts";
import { DB_POOL_SIZE, EnvError, readEnv } from "../functions-shared/env.ts";
import { functionEnv } from "../scripts/local/stack.ts";
import { localSecrets, withTestDatabase } from "./helpers/stack.ts";

const DEAD = "postgresql://postgres:x@127.0.0.1:1/nowhere";

Deno.test("TETHER_DB_URL wins over SUPABASE_DB_URL: a function's queries reach it, with the pooler's pool size", () =>
  withTestDatabase(async (db) => {
    const secrets = await localSecrets();
    const base = functionEnv(secrets, { databaseUrl: DEAD, supabaseUrl: "http://127.0.0.1:1" });
    const env = readEnv((name) => ({ ...base, TETHER_DB_URL: db.url })[name]);
    assert.equal(env.dbPoolSize, DB_POOL_SIZE.pooler);
    const deps = await createDeps(env, { name: "pooler-test" });
    try {
      // SUPABASE_DB_URL points nowhere: this answer can only come through TETHER_DB_URL.
      const [row] = await deps.db`select current_database() as name,
                                         (select count(*)::int from tether.connections) as n`;
      assert.deepEqual({ ...row }, { name: db.name, n: 0 });
      assert.equal(deps.db.options.max, DB_POOL_SIZE.pooler);
    } finally {
      await deps.db.end();
    }
  }));

Deno.test("TETHER_DB_POOL_SIZE sets the connections per worker; defaults 5 direct, 2 pooled", async () => {
  const secrets = await localSecrets();
  const base = functionEnv(secrets, { databaseUrl: DEAD, supabaseUrl: "http://127.0.0.1:1" });
  const read = (extra: Record<string, string>) =>
    readEnv((name) => ({ ...base, ...extra } as Record<string, string>)[name]);
  assert.equal(read({}).dbPoolSize, DB_POOL_SIZE.direct);
  assert.equal(read({}).databaseUrl, DEAD);
  assert.equal(read({ TETHER_DB_POOL_SIZE: "3" }).dbPoolSize, 3);
  assert.equal(read({ TETHER_DB_URL: DEAD, TETHER_DB_POOL_SIZE: "1" }).dbPoolSize, 1);
  for (const bad of ["0", "21", "two", "1.5"]) {
    assert.throws(
      () => read({ TETHER_DB_POOL_SIZE: bad }),
      (err: Error) => err instanceof EnvError && /TETHER_DB_POOL_SIZE/.test(err.message),
    );
  }
  assert.throws(
    () => read({ TETHER_DB_URL: "https://example.com" }),
    (err: Error) =>
      err instanceof EnvError && /TETHER_DB_URL/.test(err.message) &&
      !err.message.includes("example.com"),
  );
});
