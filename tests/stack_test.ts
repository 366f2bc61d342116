// The local stack's own promises: `stack up` fails clearly when PostgreSQL's
// port is taken, and the running stack publishes what docs/architecture.md says it
// does. Nothing here prints a secret: keys are checked with booleans.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { TokenVault } from "../functions-shared/vault.ts";
import { freePort, paths } from "../scripts/local/util.ts";
import { stopStrayCluster } from "../scripts/local/postgres.ts";
import { runWithPrivateStack } from "./helpers/stack.ts";
import { functionEnv, readStackEnv } from "../scripts/local/stack.ts";
import { startFunctions } from "../scripts/local/functions.ts";
import { loadOrCreateSecrets } from "../scripts/local/secrets.ts";
import {
  hasRealExtensions,
  pgInstall,
  pgNetMode,
  STANDIN_EXTENSIONS,
} from "../scripts/local/postgres.ts";

function listen(): { port: number; close: () => void } {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

Deno.test("stack up fails with a clear message and exit code 1 when the PostgreSQL port is taken", async () => {
  // A state directory that does not exist yet: `stack up` creates it, as on a fresh clone.
  const state = join(paths.state, `stack-test-${crypto.randomUUID().slice(0, 8)}`);
  const taken = listen();
  try {
    const out = await runWithPrivateStack("stack.ts", ["up"], state, {
      TETHER_PG_PORT: String(taken.port),
    });
    const stderr = out.stderr;
    assert.equal(out.code, 1, `exit code; stderr:\n${stderr}`);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line, no stack trace:\n${stderr}`);
    assert.ok(
      lines[0]!.startsWith(`stack up: Port ${taken.port} is already taken`),
      `names the port:\n${stderr}`,
    );
    assert.match(lines[0]!, /TETHER_PG_PORT=\d+ npm run stack:up/);
    assert.equal(existsSync(join(state, "stack.env")), false, "no stack.env for a failed start");
    assert.equal(
      existsSync(join(state, "pg", "data", "postmaster.pid")),
      false,
      "its PostgreSQL never started",
    );
  } finally {
    taken.close();
    await stopStrayCluster(join(state, "pg", "data"));
    await Deno.remove(state, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
});

Deno.test("the running stack's stack.env has every published variable, well formed", async () => {
  const text = await Deno.readTextFile(paths.stackEnv);
  const names = [...text.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]);
  for (
    const name of [
      "DATABASE_URL",
      "FUNCTIONS_URL",
      "SERVICE_KEY",
      "SANDBOX_URL",
      "TOKEN_ENCRYPTION_KEYS",
    ]
  ) {
    assert.ok(names.includes(name), `${name} is in .tether/stack.env`);
  }
  const env = await readStackEnv();
  assert.ok(/^postgres:\/\/postgres:[^@]*@127\.0\.0\.1:\d+\/postgres$/.test(env.DATABASE_URL));
  assert.equal(env.FUNCTIONS_URL, `${env.SUPABASE_URL}/functions/v1`);
  assert.match(env.SUPABASE_URL, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(env.SANDBOX_URL, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(/^sb_secret_[A-Za-z0-9_-]{20,}$/.test(env.SERVICE_KEY), "SERVICE_KEY is a secret key");
  const vault = await TokenVault.fromKeyRing(env.TOKEN_ENCRYPTION_KEYS);
  assert.equal(vault.activeKeyId, "k1");
  const mode = (await Deno.stat(paths.stackEnv)).mode! & 0o777;
  assert.equal(mode, 0o600, "stack.env is readable by its owner only");
});

Deno.test("the gateway serves the project's JWKS with a public ES256 key", async () => {
  const env = await readStackEnv();
  const res = await fetch(`${env.SUPABASE_URL}/auth/v1/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  const jwks = await res.json() as { keys: Record<string, unknown>[] };
  assert.equal(jwks.keys.length, 1);
  const key = jwks.keys[0]!;
  assert.deepEqual([key.kty, key.crv, key.alg, key.use], ["EC", "P-256", "ES256", "sig"]);
  assert.equal(typeof key.kid, "string");
  assert.equal("d" in key, false, "no private key material");
});

Deno.test("the served connect function answers 401 without a key", async () => {
  const env = await readStackEnv();
  const res = await fetch(`${env.FUNCTIONS_URL}/connect`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.equal(body.error, "unauthorized");
  const health = await fetch(`${env.SANDBOX_URL}/_sandbox/health`);
  await health.body?.cancel();
  assert.equal(health.status, 200);
});

Deno.test("the main database holds the Vault secrets the SQL API reads: the invoke key, not the service key", async () => {
  const env = await readStackEnv();
  const secrets = await loadOrCreateSecrets();
  const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`
      select name,
             decrypted_secret = ${env.FUNCTIONS_URL} as is_functions_url,
             decrypted_secret = ${secrets.invokeKey} as is_invoke_key,
             decrypted_secret = ${env.SERVICE_KEY} as is_service_key
        from vault.decrypted_secrets
       where name like 'tether\_%'
       order by name`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      {
        name: "tether_functions_url",
        is_functions_url: true,
        is_invoke_key: false,
        is_service_key: false,
      },
      {
        name: "tether_invoke_key",
        is_functions_url: false,
        is_invoke_key: true,
        is_service_key: false,
      },
    ]);
  } finally {
    await sql.end();
  }
});

Deno.test("the served job functions take the invoke key, connect refuses it", async () => {
  const env = await readStackEnv();
  const { invokeKey } = await loadOrCreateSecrets();
  const post = async (name: string) => {
    const res = await fetch(`${env.FUNCTIONS_URL}/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tether-invoke-key": invokeKey },
      body: '{"provider":"maystro"}',
    });
    await res.body?.cancel();
    return res.status;
  };
  assert.equal(await post("refresh-tokens"), 200);
  assert.equal(await post("connect"), 401);
});

Deno.test(".tether/ is ignored by git", async () => {
  for (const path of [".tether/", ".tether/stack.env", ".tether/secrets.json", ".tether/pg/data"]) {
    const out = await new Deno.Command("git", {
      args: ["check-ignore", "-q", path],
      cwd: paths.root,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `${path} is ignored`);
  }
  const tracked = await new Deno.Command("git", {
    args: ["ls-files", "--", ".tether"],
    cwd: paths.root,
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(tracked.stdout), "");
});

Deno.test("the gateway reports healthy only once every function can be called", async () => {
  const secrets = await loadOrCreateSecrets();
  const port = freePort();
  const starting = startFunctions({
    port,
    names: ["refresh-tokens"],
    env: functionEnv(secrets, { databaseUrl: "postgres://127.0.0.1:1/none", supabaseUrl: "" }),
    log: () => {},
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    // Poll from the moment the gateway may listen; the first 200 must mean "callable".
    while (true) {
      const health = await fetch(`${url}/health`).catch(() => undefined);
      await health?.body?.cancel();
      if (health?.status === 200) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const res = await fetch(`${url}/functions/v1/refresh-tokens`, { method: "POST" });
    const body = await res.json();
    assert.equal(res.status, 401, JSON.stringify(body)); // the function itself answered
    assert.equal(body.error, "unauthorized");
  } finally {
    await (await starting).stop();
  }
});

/** A fake PostgreSQL install: control files and libraries, as `pg_available_extensions` reads. */
async function fakeInstall(
  files: Record<string, string>,
): Promise<{ share: string; lib: string; remove: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "tether-pginstall-" });
  const share = join(dir, "share");
  const lib = join(dir, "lib");
  await Deno.mkdir(join(share, "extension"), { recursive: true });
  await Deno.mkdir(lib, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(
      join(name.endsWith(".so") ? lib : join(share, "extension"), name),
      text,
    );
  }
  return { share, lib, remove: () => Deno.remove(dir, { recursive: true }) };
}

// supabase/pg_net v0.20.4 pg_net.control and supabase/vault v0.3.1 supabase_vault.control.
const REAL_CONTROLS = {
  "pg_net.control":
    "comment = 'Async HTTP'\ndefault_version = '0.20.4'\nrelocatable = false\nmodule_pathname = '$libdir/pg_net'\n",
  "supabase_vault.control":
    "comment = 'Supabase Vault Extension'\ndefault_version = '0.3.1'\nmodule_pathname = '$libdir/supabase_vault'\nrelocatable = false\nschema = vault\n",
};

Deno.test("the real pg_net and Vault are detected only when both are installed, libraries included", async () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ["both, with libraries", { ...REAL_CONTROLS, "pg_net.so": "", "supabase_vault.so": "" }, true],
    ["no libraries", REAL_CONTROLS, false],
    ["pg_net only", { "pg_net.control": REAL_CONTROLS["pg_net.control"], "pg_net.so": "" }, false],
    [
      "an older stack's stand-ins under the real names",
      {
        "pg_net.control": "comment = 'LOCAL STAND-IN'\ndefault_version = 'tether_local'\n",
        "supabase_vault.control": "default_version = 'tether_local'\n",
        "pg_net.so": "",
        "supabase_vault.so": "",
      },
      false,
    ],
  ];
  for (const [what, files, expected] of cases) {
    const inst = await fakeInstall(files);
    try {
      assert.equal(hasRealExtensions(inst), expected, what);
    } finally {
      await inst.remove();
    }
  }
});

Deno.test("the stand-ins' extension names cannot collide with the real ones", async () => {
  assert.deepEqual(Object.keys(STANDIN_EXTENSIONS), ["pg_net", "supabase_vault"]);
  for (const name of Object.values(STANDIN_EXTENSIONS)) {
    assert.ok(!["pg_net", "supabase_vault"].includes(name));
  }
  // What this stack runs: stand-ins installed under their own names only, never as pg_net.
  const { TETHER_PGNET } = await readStackEnv();
  const { share } = await pgInstall();
  if (TETHER_PGNET === "standin") {
    for (const name of Object.values(STANDIN_EXTENSIONS)) {
      assert.ok(existsSync(join(share, "extension", `${name}.control`)), name);
    }
  }
  assert.equal(TETHER_PGNET, hasRealExtensions(await pgInstall()) ? "real" : "standin");
});

Deno.test("TETHER_PGNET: standin is always possible, a bad value or a missing real one fails clearly", async () => {
  assert.equal(await pgNetMode("standin"), "standin");
  await assert.rejects(pgNetMode("yes"), /TETHER_PGNET must be real, standin or auto, got "yes"/);
  if (hasRealExtensions(await pgInstall())) {
    assert.equal(await pgNetMode("real"), "real");
  } else {
    await assert.rejects(pgNetMode("real"), /no real pg_net and supabase_vault.*TETHER_PG_PREFIX/s);
  }
});

Deno.test("stack up refuses to switch a cluster between the stand-ins and the real pg_net", async () => {
  const state = join(paths.state, `stack-test-${crypto.randomUUID().slice(0, 8)}`);
  try {
    // A cluster created with the real extensions (its marker), started with the stand-ins.
    await Deno.mkdir(join(state, "pg", "data"), { recursive: true });
    await Deno.writeTextFile(join(state, "pg", "data", "PG_VERSION"), "15\n");
    await Deno.writeTextFile(join(state, "pg", "pgnet_mode"), "real");
    const out = await runWithPrivateStack("stack.ts", ["up"], state, {
      TETHER_PGNET: "standin",
    });
    const stderr = out.stderr;
    assert.equal(out.code, 1, `exit code; stderr:\n${stderr}`);
    assert.match(stderr, /created with the real pg_net and Vault.*would use the standin ones/);
    assert.match(stderr, /Keep TETHER_PGNET=real, or start a fresh cluster/);
  } finally {
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
});
