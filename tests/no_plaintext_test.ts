// A search for plaintext tokens in the whole database (pg_dump), the run records and every log
// line, after connects, refreshes and failures through the served functions and the jobs.
//
// Assertions never print a token: tokens are compared by fingerprint (the sandbox's first 12 hex
// of sha256) or reduced to booleans before they reach a message.
import assert from "node:assert/strict";
import { type RefreshTokensResult } from "../functions-shared/jobs/refresh_tokens.ts";
import { adapterContext, connectionRef, withAccessToken } from "../functions-shared/jobs/tokens.ts";
import { adapterFor } from "../functions-shared/providers/registry.ts";
import { invocationOf, serveFunctionsFor, storeVaultSecrets } from "./helpers/stack.ts";
import {
  type Conn,
  connectNew,
  newAccount,
  storedCredentials,
  sweep,
  withWorld,
} from "./helpers/refresh_world.ts";

// ---------------------------------------------------------------------------------------------
// No plaintext token anywhere

Deno.test("no token appears in plaintext in a pg_dump of the database, in run records or in any log line", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["refresh-tokens", "connect"]);
    try {
      const sql = w.db.sql;
      await storeVaultSecrets(sql, served);
      const conns: Conn[] = [];

      // Two connections through the served connect function, the rest through the job.
      for (const provider of ["shiphero", "quickbooks"] as const) {
        const account = await newAccount(w, provider);
        const res = await fetch(`${served.functionsUrl}/connect`, {
          method: "POST",
          headers: { apikey: served.secretKey, "content-type": "application/json" },
          body: JSON.stringify({
            provider,
            external_id: account.external_id,
            name: `${provider} via HTTP`,
            credentials: account.credentials,
            config: w.sandbox.configFor(account),
          }),
        });
        const text = await res.text();
        assert.equal(res.status, 200, `connect answered HTTP ${res.status}`);
        for (const token of w.tokens) {
          assert.ok(!text.includes(token), "connect's answer holds no token");
        }
        const body = JSON.parse(text) as { connection_id: string };
        conns.push({ id: body.connection_id, provider, externalId: account.external_id });
      }
      conns.push(await connectNew(w, "shopify", { kind: "expiring" }));
      conns.push(await connectNew(w, "shopify", { kind: "legacy" }));
      conns.push(await connectNew(w, "lightspeed"));
      conns.push(await connectNew(w, "maystro"));
      // A rejected connect over HTTP: its error message must not echo the token either.
      const revoked = await newAccount(w, "lightspeed");
      await w.sandbox.revoke("lightspeed", revoked.external_id);
      const rejected = await fetch(`${served.functionsUrl}/connect`, {
        method: "POST",
        headers: { apikey: served.secretKey, "content-type": "application/json" },
        body: JSON.stringify({
          provider: "lightspeed",
          external_id: revoked.external_id,
          name: "revoked",
          credentials: revoked.credentials,
          config: w.sandbox.configFor(revoked),
        }),
      });
      const rejectedText = await rejected.text();
      assert.equal(rejected.status, 422);
      for (const token of w.tokens) assert.ok(!rejectedText.includes(token), "422 holds no token");
      for (const conn of conns) await storedCredentials(w, conn);

      // Refresh everything through the SQL API, twice.
      for (let round = 1; round <= 2; round++) {
        await sql`update tether.connections set token_expires_at = now()`;
        const [req] = await sql<{ id: string }[]>`select public.refresh_tokens() as id`;
        const done = await invocationOf<RefreshTokensResult>(sql, req!.id);
        assert.equal(done.status, "succeeded");
        const answer = done.result;
        assert.equal(answer.refreshed, conns.length, `round ${round}`);
        for (const conn of conns) await storedCredentials(w, conn);
      }
      // Failures leave messages in runs and logs: a malformed answer, a 503, an invalid_grant.
      const [shiphero, quickbooks, , , lightspeed] = conns;
      await w.sandbox.fault({ provider: "shiphero", kind: "missing_field", field: "access_token" });
      await w.sandbox.fault({ provider: "quickbooks", kind: "5xx" });
      await w.sandbox.fault({ provider: "lightspeed", kind: "invalid_grant" });
      for (const conn of [shiphero!, quickbooks!, lightspeed!]) {
        const r = await sweep(w.deps, { connection_id: conn.id, force: true });
        assert.equal(r.refreshed, 0, `${conn.provider} failed as arranged`);
      }
      // And an on-demand refresh after a 401.
      await w.sandbox.fault({ provider: "shopify", endpoint: "api", kind: "invalid_grant" });
      const shopifyLegacy = conns[3]!;
      await withAccessToken(
        w.deps,
        shopifyLegacy.id,
        (creds, connection) =>
          adapterFor("shopify").verify(adapterContext(w.deps), connectionRef(connection), creds),
      );
      for (const conn of conns) await storedCredentials(w, conn);
      for (const value of Object.values(w.deps.env.apps)) w.tokens.add(value.clientSecret);

      assert.ok(w.tokens.size >= 20, `collected ${w.tokens.size} tokens`);
      const pgDump = await new Deno.Command("/usr/lib/postgresql/15/bin/pg_dump", {
        args: [w.db.url],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(pgDump.code, 0, new TextDecoder().decode(pgDump.stderr));
      const dump = new TextDecoder().decode(pgDump.stdout);
      // The dump does hold the data: connections, ciphertexts, run errors.
      for (const conn of conns) assert.ok(dump.includes(conn.externalId), "dump has the rows");
      assert.match(dump, /v1\.k1\./);
      assert.match(dump, /field "access_token"/);
      const leaks = (text: string) => [...w.tokens].filter((t) => text.includes(t)).length;
      assert.equal(leaks(dump), 0, "tokens in the pg_dump");
      assert.ok(!dump.includes(served.secretKey), "the service key is not in the dump");

      const runs = await sql<{ error: string | null; details: unknown }[]>`
        select error, details from tether.runs`;
      assert.ok(runs.some((r) => r.error !== null), "some runs carry errors");
      assert.equal(leaks(JSON.stringify(runs)), 0, "tokens in tether.runs");
      assert.ok(w.deps.logLines.length > 0 && served.logLines.length > 0, "both logs have lines");
      assert.equal(leaks(w.deps.logLines.join("\n")), 0, "tokens in the job's log lines");
      assert.equal(leaks(served.logLines.join("\n")), 0, "tokens in the functions' log lines");
    } finally {
      await served.stop();
    }
  }, { realClock: true });
});
