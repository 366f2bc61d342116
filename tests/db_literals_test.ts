// The values the per-page statements write into their text (functions-shared/db/literals.ts):
// every text comes back from Postgres exactly as it went in, whatever it holds, and a value that
// is not what the statement expects is refused before anything is sent.
import assert from "node:assert/strict";
import { floatLiteral, textLiteral, uuidLiteral } from "../functions-shared/db/literals.ts";
import { withTestDatabase } from "./helpers/stack.ts";

const TEXTS = [
  "",
  "plain",
  "it's",
  "'); drop table tether.connections; --",
  "$q$",
  "$q$ $q0$ $q1$",
  "ends with $",
  "$",
  "back\\slash \\' \\\\",
  '{"note": "a \\"quoted\\" word", "tab": "\\t"}',
  "emoji 📦 and ünïcödé",
  "line\nbreaks\r\n",
];

Deno.test("a text literal comes back exactly, whatever it holds", async () => {
  await withTestDatabase(async (db) => {
    for (const text of TEXTS) {
      const [{ t }] = await db.sql.unsafe<[{ t: string }]>(
        `select ${textLiteral(text)}::text as t`,
      );
      assert.equal(t, text);
    }
    const [{ n }] = await db.sql<
      [{ n: number }]
    >`select count(*)::int as n from tether.connections`;
    assert.equal(n, 0);
  });
});

Deno.test("a UUID or a number that is not one is refused before it is written in", async () => {
  await withTestDatabase(async (db) => {
    const id = crypto.randomUUID();
    const [{ u, f, none }] = await db.sql.unsafe<[{ u: string; f: number; none: null }]>(
      `select ${uuidLiteral(id)} as u, ${floatLiteral(-1.5e-7)} as f, ${
        floatLiteral(null)
      } as none`,
    );
    assert.deepEqual({ u, f, none }, { u: id, f: -1.5e-7, none: null });
  });
  assert.throws(() => uuidLiteral(`${crypto.randomUUID()}'`), TypeError);
  assert.throws(() => uuidLiteral("1'::uuid; drop table tether.connections; --"), TypeError);
  for (const x of [Number.NaN, Infinity, -Infinity]) {
    assert.throws(() => floatLiteral(x), TypeError);
  }
});
