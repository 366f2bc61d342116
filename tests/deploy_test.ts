// The deploy script's dry run: every step listed in order, no secret ever printed, and clear
// failures (nothing run) for missing or malformed settings and for a config.toml that does
// not declare every function. Offline: the dry run never calls the Supabase CLI.
import assert from "node:assert/strict";
import { cpSync, realpathSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkConfig,
  checkUploadedBundles,
  parseToml,
  TomlError,
} from "../scripts/local/deploy_checks.ts";
import { readSettings } from "../scripts/deploy.ts";
import { runScript, type ScriptRun } from "./helpers/stack.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const FUNCTIONS = [
  "backfill",
  "connect",
  "console",
  "disconnect",
  "proxy",
  "refresh-tokens",
  "sync-customers",
  "sync-orders",
  "tokens",
  "webhooks",
];

const bytes = (fill: number, length = 32) =>
  btoa(String.fromCharCode(...new Uint8Array(length).fill(fill)));
const KEY_1 = bytes(11);
const KEY_2 = bytes(22);

/** A complete configuration, every value fake and distinctive so a leak is easy to spot. */
function fakeEnv(): Record<string, string> {
  return {
    SUPABASE_PROJECT_REF: "abcdefghijklmnopqrst",
    SUPABASE_ACCESS_TOKEN: "sbp_fakeaccesstoken0000000000000000000000",
    SUPABASE_DB_URL:
      "postgresql://postgres.abcdefghijklmnopqrst:Db-Pa55word-Fake@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
    TOKEN_ENCRYPTION_KEYS: `k2:${KEY_2},k1:${KEY_1}`,
    TETHER_INVOKE_KEY: "fake-invoke-key-0000000000000000000000000",
    SHOPIFY_CLIENT_ID: "shopify-client-id-fake",
    SHOPIFY_CLIENT_SECRET: "shopify-client-secret-fake",
    SHOPIFY_PREVIOUS_CLIENT_SECRET: "shopify-previous-secret-fake",
    LIGHTSPEED_CLIENT_ID: "lightspeed-client-id-fake",
    LIGHTSPEED_CLIENT_SECRET: "lightspeed-client-secret-fake",
    LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING: "base64",
    QUICKBOOKS_CLIENT_ID: "quickbooks-client-id-fake",
    QUICKBOOKS_CLIENT_SECRET: "quickbooks-client-secret-fake",
    QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN: "quickbooks-verifier-token-fake",
    TETHER_TIME_BUDGET_MS: "50000",
    TETHER_OAUTH_STATE_SECRET: "oauth-state-secret-fake-0123456789abcdef",
    TETHER_DB_URL:
      "postgresql://postgres.abcdefghijklmnopqrst:Pooler-Pa55@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
    TETHER_DB_POOL_SIZE: "2",
  };
}

const SECRET_NAMES = [
  "SUPABASE_ACCESS_TOKEN",
  "SUPABASE_DB_URL",
  "TOKEN_ENCRYPTION_KEYS",
  "TETHER_INVOKE_KEY",
  "SHOPIFY_CLIENT_SECRET",
  "SHOPIFY_PREVIOUS_CLIENT_SECRET",
  "LIGHTSPEED_CLIENT_SECRET",
  "QUICKBOOKS_CLIENT_SECRET",
  "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN",
  "TETHER_OAUTH_STATE_SECRET",
  "TETHER_DB_URL",
];

type Result = ScriptRun;

function dryRun(
  env: Record<string, string>,
  workdir?: string,
  extra: string[] = [],
): Promise<Result> {
  const base: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) base[name] = value;
  }
  const args = ["scripts/deploy.ts", "--dry-run"];
  if (workdir) args.push("--workdir", workdir);
  args.push(...extra);
  return runScript(args, { cwd: root, env: { ...base, NO_COLOR: "1", ...env }, clearEnv: true });
}

/**
 * A throwaway copy of the parts of the repository a deploy reads (node_modules linked), with
 * config.toml edited by `edit`.
 */
function copyRepo(edit: (config: string) => string): string {
  const dir = realpathSync(Deno.makeTempDirSync({ prefix: "tether-deploy-test-" }));
  for (const part of ["supabase/config.toml", "supabase/functions", "functions-shared", "sql"]) {
    cpSync(join(root, part), join(dir, part), { recursive: true });
  }
  cpSync(join(root, "deno.json"), join(dir, "deno.json"));
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  const config = join(dir, "supabase", "config.toml");
  Deno.writeTextFileSync(config, edit(Deno.readTextFileSync(config)));
  return dir;
}

/** config.toml with every function bundled with the import map made for deployment. */
function withImportMaps(config: string): string {
  if (config.includes("import_map")) return config;
  return config.replace(
    /^\[functions\.([^\]]+)\]\n/gm,
    '$&import_map = "./functions/import_map.json"\n',
  );
}

function assertNoSecrets(result: Result, env: Record<string, string>) {
  const printed = result.stdout + result.stderr;
  for (const name of SECRET_NAMES) {
    const value = env[name];
    if (!value) continue;
    assert.ok(!printed.includes(value), `the output shows ${name}`);
  }
  for (const key of [KEY_1, KEY_2, "Db-Pa55word-Fake", "Pooler-Pa55"]) {
    assert.ok(!printed.includes(key), "the output shows key material or the db password");
  }
}

Deno.test("deploy --dry-run lists every step in order, with no secret in its output", async () => {
  const workdir = copyRepo(withImportMaps);
  try {
    const env = fakeEnv();
    const result = await dryRun(env, workdir);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.split("\n").filter((line) => /^\[\d+\/\d+\] /.test(line));
    const expected: RegExp[] = [
      /config\.toml/,
      /import graphs: deno info/,
      /type-check.*: deno check/,
      /load what the CLI uploads, alone: .*empty directory without node_modules/,
      /supabase link --project-ref abcdefghijklmnopqrst/,
      /supabase db push --remote=postgresql:\/\/postgres\.abcdefghijklmnopqrst:\*\*\*@.* --yes/,
      /supabase secrets set --env-file <private temp file: TOKEN_ENCRYPTION_KEYS, .*QUICKBOOKS_CLIENT_SECRET.*> --remote=abcdefghijklmnopqrst/,
      ...FUNCTIONS.map((name) =>
        new RegExp(`supabase functions deploy ${name} --remote=abcdefghijklmnopqrst`)
      ),
      /tether_functions_url = https:\/\/abcdefghijklmnopqrst\.supabase\.co\/functions\/v1, tether_invoke_key = \*\*\*/,
      /--file sql\/schedules\.sql/,
      /smoke check: .*tether\.connections/,
    ];
    assert.equal(lines.length, expected.length, result.stdout);
    expected.forEach((pattern, index) => {
      const line = lines[index]!;
      assert.ok(line.startsWith(`[${index + 1}/${expected.length}] `), line);
      assert.match(line, pattern);
    });
    // The secrets step lists every function secret that is set, by name only.
    for (const name of Object.keys(env)) {
      if (/^SUPABASE_/.test(name)) continue;
      assert.match(lines[6]!, new RegExp(`\\b${name}\\b`), `secrets set should name ${name}`);
    }
    assert.match(result.stdout, /offline checks passed/);
    assertNoSecrets(result, env);
  } finally {
    Deno.removeSync(workdir, { recursive: true });
  }
});

Deno.test("deploy: the repository's own config passes the offline checks", async () => {
  const env = fakeEnv();
  const result = await dryRun(env);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assertNoSecrets(result, env);
});

Deno.test("deploy: functions bundled with the development deno.json fail the dry run, as they would on Supabase", async () => {
  // The CLI uploads the entry point, the files it imports and the import map, never node_modules;
  // with "nodeModulesDir": "manual" nothing npm resolves there. Before #13 the dry run passed.
  const workdir = copyRepo((config) =>
    config.replaceAll('import_map = "./functions/import_map.json"', 'import_map = "../deno.json"')
  );
  try {
    const result = await dryRun(fakeEnv(), workdir);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /load what the CLI uploads, alone\) failed/);
    assert.match(result.stderr, /do not load on their own/);
    assert.match(result.stderr, /npm:(zod|jose|postgres)@/);
    assert.match(result.stderr, /also sets nodeModulesDir, fmt, lint, exclude, tasks/);
  } finally {
    Deno.removeSync(workdir, { recursive: true });
  }
});

Deno.test("deploy: a file the CLI's upload would miss fails the upload check, naming it", async () => {
  const workdir = copyRepo((config) => config);
  try {
    // Deno follows this import; the CLI's regex walk does not (a default and named import split
    // over lines), so the upload would lack extra.ts and the deployed function would not load.
    Deno.writeTextFileSync(
      join(workdir, "functions-shared", "extra.ts"),
      "export default 1;\nexport const two = 2;\n",
    );
    const entry = join(workdir, "supabase", "functions", "connect", "index.ts");
    Deno.writeTextFileSync(
      entry,
      `import one, {\n  two,\n} from "../../../functions-shared/extra.ts";\nconsole.log(one, two);\n${
        Deno.readTextFileSync(entry)
      }`,
    );
    let message = "the check passed";
    try {
      await checkUploadedBundles(workdir, checkConfig(workdir));
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, /connect: its uploaded files \(\d+\) do not load on their own/);
    assert.match(message, /functions-shared\/extra\.ts/);
    assert.doesNotMatch(message, /sync-orders:/);
  } finally {
    Deno.removeSync(workdir, { recursive: true });
  }
});

Deno.test("deploy: the import map made for deployment agrees with deno.json on every version", async () => {
  const workdir = copyRepo((config) => config);
  try {
    const map = join(workdir, "supabase", "functions", "import_map.json");
    Deno.writeTextFileSync(
      map,
      Deno.readTextFileSync(map).replace("npm:zod@4.6.7", "npm:zod@4.0.0"),
    );
    await assert.rejects(
      () => checkUploadedBundles(workdir, checkConfig(workdir).slice(0, 1)),
      /maps "zod" to npm:zod@4\.0\.0, deno\.json \(what the tests run\) to npm:zod@4\.6\.7/,
    );
  } finally {
    Deno.removeSync(workdir, { recursive: true });
  }
});

Deno.test("deploy --project-dir: Tether's migrations join the project's history and are pushed from there", async () => {
  const project = Deno.makeTempDirSync({ prefix: "tether-deploy-project-" });
  try {
    Deno.mkdirSync(join(project, "supabase", "migrations"), { recursive: true });
    Deno.writeTextFileSync(join(project, "supabase", "config.toml"), 'project_id = "shop"\n');
    Deno.writeTextFileSync(
      join(project, "supabase", "migrations", "20250101000000_shop.sql"),
      "create table public.products (id bigint primary key);\n",
    );
    const env = fakeEnv();
    const result = await dryRun(env, undefined, ["--project-dir", project]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.split("\n").filter((line) => /^\[\d+\/\d+\] /.test(line));
    const link = lines.findIndex((l) => /supabase link/.test(l));
    assert.match(lines[link]!, new RegExp(`\\(in ${project}\\)`));
    assert.match(
      lines[link + 1]!,
      /add Tether's migrations to the project's: npm run tether -- install --project-dir .*: \d+ migration\(s\) added after the project's own \(\d{14}_tether_preflight\.sql, /,
    );
    assert.match(lines[link + 2]!, new RegExp(`supabase db push .*\\(in ${project}\\)`));
    // A dry run writes nothing into the project.
    assert.deepEqual(
      [...Deno.readDirSync(join(project, "supabase", "migrations"))].map((e) => e.name),
      [
        "20250101000000_shop.sql",
      ],
    );
    assertNoSecrets(result, env);
  } finally {
    Deno.removeSync(project, { recursive: true });
  }
});

Deno.test("deploy: TETHER_DB_URL and TETHER_DB_POOL_SIZE are checked before anything runs", async () => {
  // (The dry run above sends both as function secrets, masked: they are in fakeEnv.)
  const badSize = await dryRun({ ...fakeEnv(), TETHER_DB_POOL_SIZE: "50" });
  assert.equal(badSize.code, 2);
  assert.match(badSize.stderr, /TETHER_DB_POOL_SIZE must be a whole number from 1 to 20/);
  const badUrl = await dryRun({ ...fakeEnv(), TETHER_DB_URL: "https://pooler.example.com" });
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /TETHER_DB_URL must be a Postgres URL/);
});

Deno.test("deploy: without TETHER_INVOKE_KEY each deploy sets a new random one on both sides", async () => {
  const { TETHER_INVOKE_KEY: _, ...env } = fakeEnv();
  const first = await readSettings((name) => env[name]);
  const second = await readSettings((name) => env[name]);
  assert.match(first.invokeKey, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(first.invokeKey, second.invokeKey);
  // The function secret and the Vault secret are one value, masked in every printed line.
  assert.equal(first.secrets.get("TETHER_INVOKE_KEY"), first.invokeKey);
  assert.ok(first.sensitive.includes(first.invokeKey));
  const given = await readSettings((name) => fakeEnv()[name]);
  assert.equal(given.invokeKey, fakeEnv().TETHER_INVOKE_KEY);
});

Deno.test("deploy: a TETHER_INVOKE_KEY that is short or a Supabase key stops before any step", async () => {
  for (
    const [key, reason] of [
      ["too-short", /TETHER_INVOKE_KEY must be at least 32 characters/],
      ["sb_secret_theProjectsServiceKey0123456789", /TETHER_INVOKE_KEY must be a key of its own/],
    ] as const
  ) {
    const env = { ...fakeEnv(), TETHER_INVOKE_KEY: key };
    const result = await dryRun(env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, reason);
    assert.doesNotMatch(result.stdout, /\[1\//);
    assertNoSecrets(result, env);
  }
});

Deno.test("deploy: a missing TOKEN_ENCRYPTION_KEYS stops before any step, naming it", async () => {
  const env = fakeEnv();
  delete env.TOKEN_ENCRYPTION_KEYS;
  const result = await dryRun(env);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /TOKEN_ENCRYPTION_KEYS is not set: export TOKEN_ENCRYPTION_KEYS=/);
  assert.match(result.stderr, /nothing was run/);
  assert.doesNotMatch(result.stdout, /\[1\//);
  assertNoSecrets(result, env);
});

Deno.test("deploy: every missing required setting is named at once", async () => {
  const result = await dryRun({});
  assert.equal(result.code, 2, result.stderr);
  for (
    const name of [
      "SUPABASE_PROJECT_REF",
      "SUPABASE_ACCESS_TOKEN",
      "SUPABASE_DB_PASSWORD",
      "TOKEN_ENCRYPTION_KEYS",
    ]
  ) {
    assert.match(result.stderr, new RegExp(`${name}.* is not set|${name} \\(or`), name);
  }
});

Deno.test("deploy: a malformed key ring is a clear error that shows no key", async () => {
  for (
    const [ring, reason] of [
      [`k1:${bytes(5, 16)}`, /16 bytes after base64 decoding; AES-256 needs exactly 32/],
      [`k1:${KEY_1},k1:${KEY_2}`, /appears twice/],
      [`k1:not base64!`, /not valid base64/],
      [`k1:${KEY_1},`, /malformed/],
    ] as const
  ) {
    const env = { ...fakeEnv(), TOKEN_ENCRYPTION_KEYS: ring };
    const result = await dryRun(env);
    assert.equal(result.code, 2, `${ring}: ${result.stderr}`);
    assert.match(result.stderr, /TOKEN_ENCRYPTION_KEYS is malformed/);
    assert.match(result.stderr, reason);
    assertNoSecrets(result, env);
    assert.ok(!result.stderr.includes(bytes(5, 16)));
  }
});

Deno.test("deploy: a provider client id without its secret is a clear error", async () => {
  const env = fakeEnv();
  delete env.SHOPIFY_CLIENT_SECRET;
  const result = await dryRun(env);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET must be set together/);
  assertNoSecrets(result, env);
});

Deno.test("deploy: a config.toml without a function's block fails the preflight, naming it", async () => {
  const workdir = copyRepo((config) =>
    withImportMaps(config).replace(/^\[functions\.webhooks\]\n(?:[^\[\n].*\n|\n)*/m, "")
  );
  try {
    const env = fakeEnv();
    const result = await dryRun(env, workdir);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /step 1\/\d+ \(check supabase\/config\.toml\) failed/);
    assert.match(result.stderr, /no \[functions\.webhooks\] block/);
    // The preflight stops the plan there: nothing after step 1 is printed or run.
    assert.doesNotMatch(result.stdout, /\[2\//);
    assertNoSecrets(result, env);
  } finally {
    Deno.removeSync(workdir, { recursive: true });
  }
});

Deno.test("parseToml reads the subset config.toml uses and names the line it cannot", () => {
  const parsed = parseToml(
    [
      "# comment",
      'project_id = "tether" # trailing',
      "[db]",
      "major_version = 15",
      "[functions.sync-orders]",
      "verify_jwt = false",
      'import_map = "../deno.json"',
      '["a.b".c]',
      "list = [1, 'two', true]",
    ].join("\n"),
  );
  assert.deepEqual(parsed, {
    project_id: "tether",
    db: { major_version: 15 },
    functions: { "sync-orders": { verify_jwt: false, import_map: "../deno.json" } },
    "a.b": { c: { list: [1, "two", true] } },
  });
  assert.throws(() => parseToml("[db]\nx = 1\n[db]\n"), TomlError);
  assert.throws(() => parseToml('a = "open'), /config\.toml:1: unterminated string/);
  assert.throws(() => parseToml("a = 1\nb = nope"), /config\.toml:2: unsupported value/);
});
