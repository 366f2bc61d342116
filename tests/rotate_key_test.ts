// Key rotation of the token vault over a real tether.credentials table: every
// value moves to the new key in batches, decrypts to what was written, a rerun
// has nothing to do, and values written with the old key meanwhile stay readable.
import assert from "node:assert/strict";
import { readCredentials, writeCredentials } from "../functions-shared/db/credentials.ts";
import { runRotateKey } from "../functions-shared/jobs/rotate_key.ts";
import { generateKeyRingEntry, TokenVault, VaultDecryptError } from "../functions-shared/vault.ts";
import { type TestDatabase, withTestDatabase } from "./helpers/stack.ts";

const FIELDS = ["access_token", "refresh_token", "api_token", "client_secret"];
const CONNECTIONS = 300;

interface Rings {
  k1: TokenVault;
  k2: TokenVault;
  /** What the functions run with during a rotation: the new key first, the old one still there. */
  rotating: TokenVault;
}

async function rings(): Promise<Rings> {
  const old = generateKeyRingEntry("k1");
  const fresh = generateKeyRingEntry("k2");
  return {
    k1: await TokenVault.fromKeyRing(old),
    k2: await TokenVault.fromKeyRing(fresh),
    rotating: await TokenVault.fromKeyRing(`${fresh},${old}`),
  };
}

/** 300 connections with 4 values each (1,200), written under k1; returns the plaintexts. */
async function seed(
  db: TestDatabase,
  k1: TokenVault,
): Promise<Map<string, Record<string, string>>> {
  const rows = await db.sql<{ id: string }[]>`
    insert into tether.connections (provider, external_id, name)
    select 'shopify', 'shop-' || g || '.myshopify.com', 'Shop ' || g
      from generate_series(1, ${CONNECTIONS}) as g
    returning id`;
  assert.equal(rows.length, CONNECTIONS);
  const plain = new Map<string, Record<string, string>>();
  await db.sql.begin(async (tx) => {
    for (const [i, { id }] of rows.entries()) {
      const values = Object.fromEntries(
        FIELDS.map((f) => [f, `${f}-${i}-${crypto.randomUUID()}`]),
      );
      plain.set(id, values);
      await writeCredentials(tx, k1, id, values);
    }
  });
  return plain;
}

async function keyIds(db: TestDatabase): Promise<Record<string, number>> {
  const rows = await db.sql<{ key_id: string; n: number }[]>`
    select split_part(ciphertext, '.', 2) as key_id, count(*)::int as n
      from tether.credentials group by 1 order by 1`;
  return Object.fromEntries(rows.map((r) => [r.key_id, r.n]));
}

async function snapshot(db: TestDatabase): Promise<Map<string, string>> {
  const rows = await db.sql<{ k: string; ciphertext: string }[]>`
    select connection_id || ':' || field as k, ciphertext from tether.credentials`;
  return new Map(rows.map((r) => [r.k, r.ciphertext]));
}

Deno.test("rotation moves 1,200 values to the new key in batches of 500, and each decrypts to its original", () =>
  withTestDatabase(async (db) => {
    const v = await rings();
    const plain = await seed(db, v.k1);
    assert.deepEqual(await keyIds(db), { k1: 1200 });

    const progress: [number, number][] = [];
    const result = await runRotateKey({ db: db.sql, vault: v.rotating }, {
      onProgress: (done, total) => progress.push([done, total]),
    });
    assert.deepEqual(result, { active_key_id: "k2", rotated: 1200, remaining: 0 });
    assert.deepEqual([...new Set(progress.map(([done]) => done))], [500, 1000, 1200]);
    assert.ok(progress.every(([, total]) => total === 1200), JSON.stringify(progress));
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i]![0] >= progress[i - 1]![0], `progress went back: ${progress}`);
    }
    assert.deepEqual(await keyIds(db), { k2: 1200 });

    // The old key can now be dropped: the k2-only ring reads everything, the k1-only ring nothing.
    let checked = 0;
    for (const [id, values] of plain) {
      const stored = await readCredentials(db.sql, v.k2, id);
      assert.deepEqual(stored.values, values);
      checked += Object.keys(stored.values).length;
    }
    assert.equal(checked, 1200);
    const [first] = plain.keys();
    await assert.rejects(
      readCredentials(db.sql, v.k1, first!),
      (err) => err instanceof VaultDecryptError && err.code === "unknown_key_id",
    );
  }));

Deno.test("a second rotation run rotates nothing and rewrites nothing", () =>
  withTestDatabase(async (db) => {
    const v = await rings();
    await seed(db, v.k1);
    await runRotateKey({ db: db.sql, vault: v.rotating });
    const before = await snapshot(db);
    const progress: [number, number][] = [];
    const again = await runRotateKey({ db: db.sql, vault: v.rotating }, {
      onProgress: (done, total) => progress.push([done, total]),
    });
    assert.deepEqual(again, { active_key_id: "k2", rotated: 0, remaining: 0 });
    assert.deepEqual(progress, [[0, 0]]);
    assert.deepEqual(await snapshot(db), before);
  }));

Deno.test("an interrupted rotation resumes where it stopped", () =>
  withTestDatabase(async (db) => {
    const v = await rings();
    const plain = await seed(db, v.k1);
    await assert.rejects(
      runRotateKey({ db: db.sql, vault: v.rotating }, {
        onProgress: () => {
          throw new Error("killed after the first batch");
        },
      }),
      /killed after the first batch/,
    );
    assert.deepEqual(await keyIds(db), { k1: 700, k2: 500 });
    const resumed = await runRotateKey({ db: db.sql, vault: v.rotating });
    assert.deepEqual(resumed, { active_key_id: "k2", rotated: 700, remaining: 0 });
    assert.deepEqual(await keyIds(db), { k2: 1200 });
    for (const [id, values] of plain) {
      assert.deepEqual((await readCredentials(db.sql, v.k2, id)).values, values);
    }
  }));

Deno.test("values written by a k1-only vault while rotation runs stay readable and win", () =>
  withTestDatabase(async (db) => {
    const v = await rings();
    const plain = await seed(db, v.k1);
    const ids = [...plain.keys()];
    const written = new Map<string, Record<string, string>>();
    const write = async (id: string, values: Record<string, string>) => {
      await db.sql.begin((tx) => writeCredentials(tx, v.k1, id, values));
      written.set(id, { ...(written.get(id) ?? {}), ...values });
    };

    // Between batches: a new field, and a field that the first batch has already rotated.
    const [rotatedFirst] = await db.sql<{ connection_id: string; field: string }[]>`
      select connection_id, field from tether.credentials order by connection_id, field limit 1`;
    let between = 0;
    // Concurrently: a stream of k1 writes, as functions not yet restarted with the new ring do.
    let stop = false;
    const writer = (async () => {
      let n = 0;
      while (!stop) {
        const id = ids[(n * 37) % ids.length]!;
        await write(id, { access_token: `concurrent-${n}` });
        n++;
        await new Promise((r) => setTimeout(r, 5));
      }
      return n;
    })();
    let betweenWrites: Promise<void> | undefined;
    const result = await runRotateKey({ db: db.sql, vault: v.rotating }, {
      onProgress: () => {
        if (between++ > 0) return;
        betweenWrites = (async () => {
          await write(ids[10]!, { webhook_secret: "whsec-during-rotation" });
          await write(rotatedFirst!.connection_id, { [rotatedFirst!.field]: "rewritten-with-k1" });
        })();
      },
    });
    stop = true;
    await betweenWrites;
    const concurrentWrites = await writer;
    assert.ok(concurrentWrites > 0);
    assert.equal(result.active_key_id, "k2");
    assert.ok(result.rotated >= 1200, `rotated ${result.rotated}`);

    // Every value, written before or during the rotation, reads back with the rotating ring.
    let checked = 0;
    for (const id of ids) {
      const expected = { ...plain.get(id)!, ...(written.get(id) ?? {}) };
      assert.deepEqual((await readCredentials(db.sql, v.rotating, id)).values, expected);
      checked += Object.keys(expected).length;
    }
    assert.equal(checked, 1201);
    assert.equal(
      (await readCredentials(db.sql, v.rotating, ids[10]!)).values.webhook_secret,
      "whsec-during-rotation",
    );
    // What is still on k1 is exactly what was written after the last batch, and a rerun takes it.
    const counts = await keyIds(db);
    assert.equal((counts.k1 ?? 0) + (counts.k2 ?? 0), 1201);
    assert.ok(result.remaining <= (counts.k1 ?? 0), `${result.remaining} > ${counts.k1}`);
    const after = await runRotateKey({ db: db.sql, vault: v.rotating });
    assert.deepEqual(after, { active_key_id: "k2", rotated: counts.k1 ?? 0, remaining: 0 });
    assert.deepEqual(await keyIds(db), { k2: 1201 });
  }));
