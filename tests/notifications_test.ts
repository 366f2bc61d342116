// Notifications (issue #14 item 4) end to end: events emitted by the real sync, refresh and
// backfill jobs against the local Postgres and the provider sandboxes, sent by pg_net (the
// stand-in worker, or the real pg_net under `--pg-net`) to real HTTP subscribers that verify them
// with `standardwebhooks`, the Standard Webhooks reference library (not our code); retries,
// disabling, and the README's subscriber example. Time is moved by moving timestamps, never slept.
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { startSandbox } from "../sandbox/server.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import { runBackfill } from "../functions-shared/jobs/backfill.ts";
import type { Deps } from "../functions-shared/deps.ts";
import {
  notificationHandler,
  type TetherNotification,
} from "../client/examples/notification_subscriber.ts";
import {
  createTestDatabase,
  eventually,
  netWorkerForDatabase,
  type TestDatabase,
  testDeps,
} from "./helpers/stack.ts";
import { SandboxControl } from "./helpers/sandbox.ts";
import { type Conn, connectSeeded } from "./helpers/records.ts";
import {
  connectNew,
  DAY,
  makeDue,
  sweep,
  withWorld as withRefreshWorld,
} from "./helpers/refresh_world.ts";

/** The spec's example schedule (delays after attempts 1, 2, …), the settings' default. */
const SCHEDULE_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

interface Received {
  headers: Record<string, string>;
  body: string;
  /** What standardwebhooks made of it: the payload, or why it refused. */
  verified: TetherNotification | { refused: string };
}

/** An HTTP subscriber that checks every delivery with the reference verifier. */
function startSubscriber(secret: () => string, status = 200) {
  const received: Received[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const body = await req.text();
    const headers = Object.fromEntries(req.headers);
    let verified: Received["verified"];
    try {
      verified = new Webhook(secret()).verify(body, headers) as TetherNotification;
    } catch (err) {
      verified = { refused: (err as Error).message };
    }
    received.push({ headers, body, verified });
    return new Response(status === 200 ? "thanks" : "subscriber down", { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks/tether`,
    received,
    stop: () => server.shutdown(),
  };
}

async function subscribe(
  db: TestDatabase,
  url: string,
  types: string[] | null = null,
): Promise<{ id: string; secret: string }> {
  const [row] = await db.sql<{ subscription_id: string; secret: string }[]>`
    select * from tether.subscribe(${url}, ${types})`;
  return { id: row!.subscription_id, secret: row!.secret };
}

/** Runs the dispatcher once (what pg_cron does every minute). */
async function dispatch(db: TestDatabase): Promise<Record<string, number>> {
  const [row] = await db.sql<{ r: Record<string, number> }[]>`
    select tether.deliver_notifications() as r`;
  return row!.r;
}

/** Every sent attempt has pg_net's answer; then the dispatcher records the outcomes. */
async function settle(db: TestDatabase): Promise<Record<string, number>> {
  await eventually("pg_net's answers to every sent attempt", async () => {
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.notification_deliveries d
       where d.status = 'sent'
         and not exists (select 1 from net._http_response r where r.id = d.request_id)`;
    return row!.n === 0 ? true : undefined;
  }, 30_000);
  return await dispatch(db);
}

interface EventRow {
  type: string;
  payload: TetherNotification;
}

async function events(db: TestDatabase, type: string): Promise<EventRow[]> {
  return await db.sql<EventRow[]>`
    select type, payload from tether.notification_events where type = ${type} order by id`;
}

/** A database, a sandbox, a pg_net worker for the database, and the jobs' dependencies. */
async function withWorld(
  fn: (w: { db: TestDatabase; sandbox: SandboxControl; deps: Deps }) => Promise<void>,
) {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  const net = await netWorkerForDatabase(db);
  try {
    await fn({ db, sandbox: new SandboxControl(running.url), deps: await testDeps(db) });
  } finally {
    await net.stop();
    await running.close();
    await db.drop();
  }
}

function seeded(w: { deps: Deps; sandbox: SandboxControl }, orders: number): Promise<Conn> {
  return connectSeeded(w.deps, w.sandbox, "shopify", {
    seed: 5,
    orders,
    customers: 0,
    spread_days: 3,
  });
}

// ---------------------------------------------------------------------------------------------

Deno.test("our signature is the Standard Webhooks reference library's, for any secret, id, time and body", async () => {
  const db = await createTestDatabase();
  try {
    const bodies = ['{"a": 1}', '{"type": "x", "data": {"name": "Café ☕ \\"q\\""}}', "{}"];
    for (let i = 0; i < 12; i++) {
      const secret = `whsec_${
        btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24 + i))))
      }`;
      const id = `msg_${crypto.randomUUID().replaceAll("-", "")}`;
      const seconds = 1_700_000_000 + i * 7919;
      const body = bodies[i % bodies.length]!;
      const [row] = await db.sql<{ sig: string }[]>`
        select tether.webhook_signature(${secret}, ${id}, ${seconds}, ${body}) as sig`;
      const reference = new Webhook(secret).sign(id, new Date(seconds * 1000), body);
      assert.equal(row!.sig, reference, `case ${i}`);
    }
    // The secret tether.subscribe makes: whsec_ + base64 of 32 random bytes, shown once, kept in
    // Vault only.
    const { id, secret } = await subscribe(db, "https://example.test/hook");
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(atob(secret.slice(6)).length, 32);
    const [stored] = await db.sql<{ text: string }[]>`
      select (select row_to_json(s)::text from tether.subscriptions s where s.id = ${id})
             || (select coalesce(json_agg(l)::text, '') from tether.list_subscriptions() l) as text`;
    assert.ok(
      !stored!.text.includes(secret.slice(6)),
      "the secret is not in the table or the list",
    );
    const [vault] = await db.sql<{ same: boolean }[]>`
      select decrypted_secret = ${secret} as same from vault.decrypted_secrets
       where name = ${"tether_subscription_" + id}`;
    assert.equal(vault!.same, true);
    // Not readable through the Data API's roles.
    for (const role of ["anon", "authenticated"]) {
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx.unsafe("select * from vault.decrypted_secrets");
        }),
        /permission denied/,
        role,
      );
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx.unsafe("select * from tether.subscribe('https://evil.test/')");
        }),
        /permission denied/,
        role,
      );
    }
    assert.equal((await db.sql`select tether.delete_subscription(${id}) as ok`)[0]!.ok, true);
    const left = await db.sql`select 1 from vault.secrets where id in (
      select secret_id from tether.subscriptions) or name = ${"tether_subscription_" + id}`;
    assert.equal(left.length, 0, "deleting the subscription deletes its secret");
  } finally {
    await db.drop();
  }
});

Deno.test("a sync that brings changes is notified, signed: counts and feed position; a run with no changes notifies nothing", async () => {
  await withWorld(async (w) => {
    let secret = "";
    const subscriber = startSubscriber(() => secret);
    try {
      const conn = await seeded(w, 30);
      ({ secret } = await subscribe(w.db, subscriber.url, ["run.changes"]));

      const first = await runSync(w.deps, "orders", { connection_id: conn.id, force: true });
      assert.equal(first.runs[0]!.added, 30);
      assert.deepEqual(await settle(w.db), {
        succeeded: 1,
        failed: 0,
        retried: 0,
        disabled: 0,
        sent: 0,
        waiting: 0,
      });
      assert.equal(subscriber.received.length, 1);
      const [got] = subscriber.received;
      const n = got!.verified as TetherNotification;
      assert.equal(n.type, "run.changes", JSON.stringify(got!.verified));
      const [feed] = await w.db.sql<{ max: string }[]>`
        select max(id)::text as max from tether.changes where connection_id = ${conn.id}`;
      assert.deepEqual({ ...n.data, started_at: null, finished_at: null, run_id: null }, {
        connection_id: conn.id,
        provider: "shopify",
        run_id: null,
        kind: "sync",
        stream: "orders",
        backfill_id: null,
        status: "succeeded",
        started_at: null,
        finished_at: null,
        counts: { orders: { added: 30, updated: 0, deleted: 0 } },
        feed_position: Number(feed!.max),
      });
      assert.match(got!.headers["webhook-id"]!, /^msg_[0-9a-f]{32}$/);
      assert.equal(got!.headers["content-type"], "application/json");

      // Nothing changed at the provider: the run writes nothing and says nothing.
      const again = await runSync(w.deps, "orders", { connection_id: conn.id, force: true });
      assert.equal(again.runs[0]!.added + again.runs[0]!.updated, 0);
      await settle(w.db);
      assert.equal((await events(w.db, "run.changes")).length, 1);
      assert.equal(subscriber.received.length, 1);

      // Tampered in transit: the reference verifier refuses it.
      const tampered = new Webhook(secret);
      assert.throws(() =>
        tampered.verify(got!.body.replace('"added": 30', '"added": 31'), got!.headers)
      );
      assert.throws(() =>
        tampered.verify(got!.body, { ...got!.headers, "webhook-id": "msg_other" })
      );
      // Nothing secret went through pg_net's queue, which every database role can read.
      const [queued] = await w.db.sql<{ text: string }[]>`
        select coalesce((select json_agg(r)::text from net._http_response r), '') as text`;
      assert.ok(!queued!.text.includes(secret.slice(6)));
    } finally {
      await subscriber.stop();
    }
  });
});

Deno.test("a failing subscriber is retried on the schedule, then disabled after failing for a day, saying why", async () => {
  await withWorld(async (w) => {
    let secret = "";
    const subscriber = startSubscriber(() => secret, 500);
    try {
      ({ secret } = await subscribe(w.db, subscriber.url));
      const conn = await seeded(w, 0);
      await w.db.sql`update tether.connections set status = 'error', last_error = 'boom'
                      where id = ${conn.id}`;

      let elapsed = 0;
      for (let attempt = 1;; attempt++) {
        const outcome = await settle(w.db);
        const [last] = await w.db.sql<
          { attempt: number; status: string; status_code: number; gap: number | null }[]
        >`
          select attempt, status, status_code,
                 extract(epoch from next_attempt_at - finished_at)::int as gap
            from tether.notification_deliveries order by id desc limit 1`;
        if (last!.status === "scheduled") {
          // Failed, with the next attempt scheduled after the schedule's delay.
          const [failed] = await w.db.sql<
            { attempt: number; status: string; status_code: number; gap: number; due_gap: number }[]
          >`
            select f.attempt, f.status, f.status_code,
                   extract(epoch from f.next_attempt_at - f.finished_at)::int as gap,
                   extract(epoch from n.due_at - f.finished_at)::int as due_gap
              from tether.notification_deliveries f
              join tether.notification_deliveries n on n.attempt = f.attempt + 1
             where f.attempt = ${attempt}`;
          assert.deepEqual({ ...failed }, {
            attempt,
            status: "failed",
            status_code: 500,
            gap: SCHEDULE_SECONDS[attempt - 1],
            due_gap: SCHEDULE_SECONDS[attempt - 1],
          });
          assert.equal(outcome.retried, 1);
          // That much time passes: the retry is due, and the subscriber has failed for as long.
          const delay = SCHEDULE_SECONDS[attempt - 1]!;
          elapsed += delay;
          await w.db.sql`
            update tether.notification_deliveries set due_at = now() where status = 'scheduled'`;
          await w.db.sql`
            update tether.subscriptions
               set failing_since = failing_since - make_interval(secs => ${delay})`;
          assert.equal((await dispatch(w.db)).sent, 1);
          continue;
        }
        // The attempt sent 31 h 35 min 5 s after the first (5 s + 5 min + … + 14 h) is the first
        // to fail after a whole day of failures: no retry, the subscriber is disabled.
        assert.equal(attempt, 8);
        assert.equal(elapsed, 5 + 300 + 1800 + 7200 + 18000 + 36000 + 50400);
        assert.deepEqual({ ...last }, {
          attempt: 8,
          status: "failed",
          status_code: 500,
          gap: null,
        });
        assert.equal(outcome.disabled, 1);
        break;
      }
      const [sub] = await w.db.sql<{ enabled: boolean; disabled_reason: string }[]>`
        select enabled, disabled_reason from tether.subscriptions`;
      assert.equal(sub!.enabled, false);
      assert.match(
        sub!.disabled_reason,
        /every delivery failed from .* \(disable_after 1 day\); last: HTTP 500/,
      );

      // Eight attempts of one message, each signed anew and valid when sent.
      assert.equal(subscriber.received.length, 8);
      assert.equal(new Set(subscriber.received.map((r) => r.headers["webhook-id"])).size, 1);
      for (const r of subscriber.received) {
        assert.equal((r.verified as TetherNotification).type, "connection.status_changed");
      }
      const excerpts = await w.db.sql`
        select distinct response_excerpt from tether.notification_deliveries`;
      assert.deepEqual(excerpts.map((r) => r.response_excerpt), ["subscriber down"]);

      // Disabled: later events are not sent to it.
      await w.db.sql`update tether.connections set status = 'active' where id = ${conn.id}`;
      assert.equal((await events(w.db, "connection.status_changed")).length, 1);
      const cli = await w.db.sql`select * from tether.recent_deliveries(null, 3)`;
      assert.equal(cli.length, 3);
      assert.equal(cli[0]!.attempt, 8);
    } finally {
      await subscriber.stop();
    }
  });
});

Deno.test("a Retry-After longer than the schedule's delay is waited; 410 Gone disables the subscriber at once", async () => {
  await withWorld(async (w) => {
    const answers = [
      new Response("busy", { status: 503, headers: { "retry-after": "7200" } }),
      new Response("gone", { status: 410 }),
    ];
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      async (req) => {
        await req.body?.cancel();
        return answers.shift() ?? new Response("unexpected", { status: 500 });
      },
    );
    try {
      await subscribe(w.db, `http://127.0.0.1:${server.addr.port}/`);
      const conn = await seeded(w, 0);
      await w.db.sql`update tether.connections set status = 'disabled' where id = ${conn.id}`;
      assert.equal((await settle(w.db)).retried, 1);
      const [first] = await w.db.sql<{ gap: number; status_code: number }[]>`
        select extract(epoch from next_attempt_at - finished_at)::int as gap, status_code
          from tether.notification_deliveries where attempt = 1`;
      assert.deepEqual({ ...first }, { gap: 7200, status_code: 503 }, "2 h asked, not 5 s");

      await w.db.sql`update tether.notification_deliveries set due_at = now()
                      where status = 'scheduled'`;
      assert.equal((await dispatch(w.db)).sent, 1);
      assert.equal((await settle(w.db)).disabled, 1);
      const [sub] = await w.db.sql<{ enabled: boolean; disabled_reason: string }[]>`
        select enabled, disabled_reason from tether.subscriptions`;
      assert.equal(sub!.enabled, false);
      assert.match(sub!.disabled_reason, /answered 410 Gone/);
      const [second] = await w.db.sql`
        select status, status_code, next_attempt_at from tether.notification_deliveries
         where attempt = 2`;
      assert.deepEqual({ ...second }, {
        status: "failed",
        status_code: 410,
        next_attempt_at: null,
      });
      assert.equal(answers.length, 0);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("reauth_required is notified once, as an alert, not at every sweep", async () => {
  await withRefreshWorld(async (w) => {
    const net = await netWorkerForDatabase(w.db);
    let secret = "";
    const subscriber = startSubscriber(() => secret);
    try {
      ({ secret } = await subscribe(w.db, subscriber.url, ["connection.status_changed"]));
      const conn = await connectNew(w, "quickbooks");
      await w.sandbox.revoke("quickbooks", conn.externalId);
      await makeDue(w, [conn]);
      assert.equal((await sweep(w.deps, {})).reauth_required, 1);
      for (let i = 0; i < 3; i++) {
        w.clock.advance(DAY);
        await makeDue(w, [conn]);
        await sweep(w.deps, {});
        await sweep(w.deps, { force: true });
      }
      await settle(w.db);
      const sent = await events(w.db, "connection.status_changed");
      assert.equal(sent.length, 1);
      assert.equal(subscriber.received.length, 1);
      const n = subscriber.received[0]!.verified as TetherNotification;
      assert.equal(n.type, "connection.status_changed", JSON.stringify(n));
      assert.deepEqual(
        [n.data.connection_id, n.data.status, n.data.previous_status, n.data.alert],
        [conn.id, "reauth_required", "active", true],
      );
      assert.match(String(n.data.error), /reconnect the QuickBooks account/);
    } finally {
      await subscriber.stop();
      await net.stop();
    }
  });
});

Deno.test("a backfill's end is notified with its counts, once; subscribers scoped to an owner get only their connections' events", async () => {
  await withWorld(async (w) => {
    let secret = "";
    const subscriber = startSubscriber(() => secret);
    try {
      const conn = await seeded(w, 40);
      const owner = crypto.randomUUID();
      await w.db.sql`update tether.connections set owner_id = ${owner} where id = ${conn.id}`;
      const all = await subscribe(w.db, subscriber.url, ["backfill.ended"]);
      secret = all.secret;
      const [others] = await w.db.sql<{ subscription_id: string }[]>`
        select subscription_id from tether.subscribe('http://127.0.0.1:9/others', null,
                                                     ${crypto.randomUUID()})`;
      const [owners] = await w.db.sql<{ subscription_id: string }[]>`
        select subscription_id from tether.subscribe('http://127.0.0.1:9/owners',
                                                     '{backfill.ended}', ${owner})`;
      const now = Math.floor(Date.now() / 1000) * 1000;
      const [job] = await w.db.sql<{ id: string }[]>`
        select tether.create_backfill(${conn.id}, 'orders', ${new Date(now - 4 * DAY * 1000)},
                                      ${new Date(now)}) as id`;
      const result = await runBackfill(w.deps, { backfill_id: job!.id });
      assert.equal(result.status, "succeeded");
      await settle(w.db);
      assert.equal((await events(w.db, "backfill.ended")).length, 1);
      // The unscoped subscription and the owner's; not another owner's.
      const deliveries = await w.db.sql<{ subscription_id: string }[]>`
        select distinct subscription_id from tether.notification_deliveries`;
      assert.deepEqual(
        deliveries.map((d) => d.subscription_id).sort(),
        [all.id, owners!.subscription_id].sort(),
      );
      assert.ok(!deliveries.some((d) => d.subscription_id === others!.subscription_id));
      const got = subscriber.received.map((r) => r.verified as TetherNotification);
      assert.equal(got.length, 1, JSON.stringify(got));
      assert.equal(got[0]!.type, "backfill.ended");
      const data = got[0]!.data;
      assert.deepEqual(
        [data.backfill_id, data.connection_id, data.stream, data.status, data.records_count],
        [job!.id, conn.id, "orders", "succeeded", 40],
      );
      // Cancelling a finished job changes nothing, so says nothing.
      await w.db.sql`select public.cancel_backfill(${job!.id})`;
      assert.equal((await events(w.db, "backfill.ended")).length, 1);
    } finally {
      await subscriber.stop();
    }
  });
});

Deno.test("the README's subscriber example accepts a real notification from Tether and refuses a tampered one", async () => {
  await withWorld(async (w) => {
    let secret = "";
    const accepted: TetherNotification[] = [];
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      (req) => notificationHandler(secret, (n) => void accepted.push(n))(req),
    );
    try {
      const url = `http://127.0.0.1:${server.addr.port}/`;
      ({ secret } = await subscribe(w.db, url, ["connection.status_changed"]));
      const conn = await seeded(w, 0);
      await w.db.sql`update tether.connections set status = 'reauth_required',
                       last_error = 'invalid_grant' where id = ${conn.id}`;
      assert.equal((await settle(w.db)).succeeded, 1);
      assert.equal(accepted.length, 1);
      assert.equal(accepted[0]!.data.status, "reauth_required");
      const [d] = await w.db.sql`select status, status_code from tether.notification_deliveries`;
      assert.deepEqual({ ...d }, { status: "succeeded", status_code: 204 });

      // The same request as Tether queued it, then with one byte changed.
      const [q] = await w.db.sql<{ headers: Record<string, string>; body: string }[]>`
        select n.payload::text as body,
               jsonb_build_object('webhook-id', n.message_id) as headers
          from tether.notification_events n`;
      const seconds = Math.floor(Date.now() / 1000);
      const sign = (body: string) =>
        new Webhook(secret).sign(q!.headers["webhook-id"]!, new Date(seconds * 1000), body);
      const post = (body: string, signature: string) =>
        fetch(url, {
          method: "POST",
          body,
          headers: {
            "webhook-id": q!.headers["webhook-id"]!,
            "webhook-timestamp": String(seconds),
            "webhook-signature": signature,
          },
        });
      const good = await post(q!.body, sign(q!.body));
      assert.equal(good.status, 204);
      const bad = await post(q!.body.replace("reauth_required", "active"), sign(q!.body));
      assert.equal(bad.status, 401);
      assert.deepEqual(await bad.json(), { error: "no matching signature" });
      assert.equal(accepted.length, 2, "the tampered one was not handed on");

      // The README shows this very file.
      const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
      const example = await Deno.readTextFile(
        new URL("../client/examples/notification_subscriber.ts", import.meta.url),
      );
      assert.ok(readme.includes(example.trim()), "README quotes the example as it is");
    } finally {
      await server.shutdown();
    }
  });
});
