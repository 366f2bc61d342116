// `npm run deploy [-- --dry-run] [-- --yes]`: deploys Tether to a Supabase project with the
// Supabase CLI only. Reads its settings from the environment (see usage()), checks them and
// the repository offline, then links the project, pushes the migrations, sets the function
// secrets, deploys every function, stores the two Vault secrets the SQL API reads, installs
// the pg_cron schedules and runs a smoke query. `--dry-run` prints every step (secrets
// masked) and runs only the offline checks.
import { join } from "node:path";
import { EnvError, readEnv } from "../functions-shared/env.ts";
import { TokenVault, VaultConfigError } from "../functions-shared/vault.ts";
import {
  checkConfig,
  CheckError,
  checkImportGraphs,
  checkTypes,
  checkUploadedBundles,
  type FunctionConfig,
  functionNames,
} from "./local/deploy_checks.ts";
import { paths } from "./local/util.ts";
import { planInstall, tetherSource, writePlan } from "./cli/install.ts";
import { CliError, UsageError as UsageErrorOfCli } from "./cli/common.ts";

const USAGE = `Usage: npm run deploy -- [--dry-run] [--yes] [--project-dir <dir>] [--workdir <dir>]

Settings (environment variables):
  SUPABASE_PROJECT_REF      required  the project ref (https://<ref>.supabase.co)
  SUPABASE_ACCESS_TOKEN     required  a personal access token for the Supabase CLI
                                      (https://supabase.com/dashboard/account/tokens)
  SUPABASE_DB_PASSWORD      one of    the database password (used for the linked project)
  SUPABASE_DB_URL             these   or a Postgres URL of the project's database
  TOKEN_ENCRYPTION_KEYS     required  the token vault's key ring: id:base64(32 bytes)[,id:...]
  TETHER_INVOKE_KEY         optional  the key pg_cron's calls to the functions carry: set as
                                      the functions' TETHER_INVOKE_KEY and stored in Vault as
                                      tether_invoke_key; at least 32 characters, never a Supabase
                                      API key (pg_net's queue is readable by every role).
                                      Default: a new random key on each deploy
  TETHER_FUNCTIONS_URL      optional  default https://<ref>.supabase.co/functions/v1
  TETHER_DB_URL             optional  the functions' database URL, e.g. the pooler's transaction
                                      mode (port 6543); default: SUPABASE_DB_URL, set by Supabase
  TETHER_DB_POOL_SIZE       optional  connections per function worker (default 5, or 2 with
                                      TETHER_DB_URL)
  Function secrets, optional:  SHOPIFY_CLIENT_ID + SHOPIFY_CLIENT_SECRET,
    LIGHTSPEED_CLIENT_ID + LIGHTSPEED_CLIENT_SECRET, QUICKBOOKS_CLIENT_ID + QUICKBOOKS_CLIENT_SECRET,
    SHOPIFY_PREVIOUS_CLIENT_SECRET, QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN,
    LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING, TETHER_TIME_BUDGET_MS, TETHER_CPU_BUDGET_MS,
    TETHER_CPU_MS_PER_RECORD, TETHER_CPU_MS_PER_REFRESH, TETHER_CPU_MS_PER_SYNC_RUN,
    SHOPIFY_SCOPES, LIGHTSPEED_SCOPES,
    TETHER_OAUTH_STATE_SECRET, TETHER_PUBLIC_FUNCTIONS_URL

Flags:
  --dry-run        print every step with secrets masked; run only the offline checks
  --yes            do not ask for confirmation before changing the project
  --project-dir <dir>
                   a Supabase project directory with migrations of its own: Tether's migrations
                   are added to <dir>/supabase/migrations (npm run tether -- install) and pushed
                   from there, so the project keeps one history; without it, Tether's own
                   supabase/migrations are pushed (a project used for Tether alone)
  --workdir <dir>  the repository to deploy (default: this one)`;

/** Function secrets forwarded to `supabase secrets set` when set (never printed). */
const FUNCTION_SECRETS = [
  "TOKEN_ENCRYPTION_KEYS",
  "TETHER_INVOKE_KEY",
  "SHOPIFY_CLIENT_ID",
  "SHOPIFY_CLIENT_SECRET",
  "SHOPIFY_PREVIOUS_CLIENT_SECRET",
  "LIGHTSPEED_CLIENT_ID",
  "LIGHTSPEED_CLIENT_SECRET",
  "LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING",
  "QUICKBOOKS_CLIENT_ID",
  "QUICKBOOKS_CLIENT_SECRET",
  "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN",
  "TETHER_TIME_BUDGET_MS",
  "TETHER_CPU_BUDGET_MS",
  "TETHER_CPU_MS_PER_RECORD",
  "TETHER_CPU_MS_PER_REFRESH",
  "TETHER_CPU_MS_PER_SYNC_RUN",
  "SHOPIFY_SCOPES",
  "LIGHTSPEED_SCOPES",
  "TETHER_OAUTH_STATE_SECRET",
  "TETHER_PUBLIC_FUNCTIONS_URL",
  "TETHER_DB_URL",
  "TETHER_DB_POOL_SIZE",
] as const;

const VAULT_SECRETS = ["tether_functions_url", "tether_invoke_key"] as const;

class UsageError extends Error {}
class SettingsError extends Error {}
class StepError extends Error {}

interface Options {
  dryRun: boolean;
  yes: boolean;
  workdir: string;
  /** The user's Supabase project, when it has migrations of its own. */
  projectDir?: string;
}

function parseArgs(args: string[]): Options {
  const options: Options = { dryRun: false, yes: false, workdir: paths.root };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--dry-run") options.dryRun = true;
    else if (arg === "--yes" || arg === "-y") options.yes = true;
    else if (arg === "--workdir") {
      const dir = args[++i];
      if (!dir) throw new UsageError("--workdir needs a directory");
      options.workdir = dir;
    } else if (arg.startsWith("--workdir=")) options.workdir = arg.slice("--workdir=".length);
    else if (arg === "--project-dir") {
      const dir = args[++i];
      if (!dir) throw new UsageError("--project-dir needs a directory");
      options.projectDir = dir;
    } else if (arg.startsWith("--project-dir=")) {
      options.projectDir = arg.slice("--project-dir=".length);
    } else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else throw new UsageError(`unknown argument "${arg}"`);
  }
  return options;
}

export interface Settings {
  ref: string;
  accessToken: string;
  dbPassword?: string;
  dbUrl?: string;
  functionsUrl: string;
  /** TETHER_INVOKE_KEY, given or generated: also in `secrets`, and stored in Vault. */
  invokeKey: string;
  /** Function secrets to set, by name. */
  secrets: Map<string, string>;
  /** Every secret value, so that no printed line can carry one. */
  sensitive: string[];
}

/** Reads and checks every setting; throws SettingsError listing every problem at once. */
export async function readSettings(get: (name: string) => string | undefined): Promise<Settings> {
  const value = (name: string) => get(name)?.trim() || undefined;
  const problems: string[] = [];
  const missing = (name: string, how: string) => problems.push(`${name} is not set: ${how}`);

  const ref = value("SUPABASE_PROJECT_REF");
  if (!ref) {
    missing(
      "SUPABASE_PROJECT_REF",
      "export SUPABASE_PROJECT_REF=<ref> (the <ref> in https://<ref>.supabase.co)",
    );
  } else if (!/^[a-z]{20}$/.test(ref)) {
    problems.push("SUPABASE_PROJECT_REF must be a project ref: 20 lowercase letters");
  }
  const accessToken = value("SUPABASE_ACCESS_TOKEN");
  if (!accessToken) {
    missing(
      "SUPABASE_ACCESS_TOKEN",
      "create a token at https://supabase.com/dashboard/account/tokens and export SUPABASE_ACCESS_TOKEN=<token>",
    );
  }
  const dbPassword = value("SUPABASE_DB_PASSWORD");
  const dbUrl = value("SUPABASE_DB_URL");
  if (!dbPassword && !dbUrl) {
    missing(
      "SUPABASE_DB_PASSWORD (or SUPABASE_DB_URL)",
      "export SUPABASE_DB_PASSWORD=<the database password> (Project Settings > Database), " +
        "or SUPABASE_DB_URL=postgresql://postgres...:<password>@<host>:5432/postgres",
    );
  }
  if (dbUrl) {
    let url: URL | undefined;
    try {
      url = new URL(dbUrl);
    } catch { /* reported below */ }
    if (!url || !["postgres:", "postgresql:"].includes(url.protocol) || !url.hostname) {
      problems.push(
        "SUPABASE_DB_URL is not a Postgres URL (postgresql://user:password@host:port/db)",
      );
    }
  }

  const keyRing = value("TOKEN_ENCRYPTION_KEYS");
  if (!keyRing) {
    missing(
      "TOKEN_ENCRYPTION_KEYS",
      "export TOKEN_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32) (keep it: stored tokens need it)",
    );
  } else {
    try {
      await TokenVault.fromKeyRing(keyRing);
    } catch (err) {
      // The vault's messages name entries by position and id, never by key material.
      if (!(err instanceof VaultConfigError)) throw err;
      problems.push(`TOKEN_ENCRYPTION_KEYS is malformed: ${err.message}`);
    }
  }

  const functionsUrl = value("TETHER_FUNCTIONS_URL") ??
    (ref ? `https://${ref}.supabase.co/functions/v1` : "");
  if (value("TETHER_FUNCTIONS_URL")) {
    try {
      if (new URL(functionsUrl).protocol !== "https:") throw new Error();
    } catch {
      problems.push("TETHER_FUNCTIONS_URL must be an https:// URL");
    }
  }

  const secrets = new Map<string, string>();
  for (const name of FUNCTION_SECRETS) {
    const v = value(name);
    if (v === undefined) continue;
    if (/[\r\n]/.test(v)) problems.push(`${name} must be a single line`);
    else if (v.includes("'") && /["\\$`]/.test(v)) {
      problems.push(
        `${name} holds both ' and one of " \\ $ \`: it cannot be written to an env file`,
      );
    }
    secrets.set(name, v);
  }
  if (!secrets.has("TETHER_INVOKE_KEY")) secrets.set("TETHER_INVOKE_KEY", newInvokeKey());
  // The functions' own parser, on exactly what will be deployed (the platform's variables
  // filled with placeholders): the pairs, the time budget, the encodings, the OAuth secret.
  const platform: Record<string, string> = {
    SUPABASE_DB_URL: "postgresql://postgres@placeholder:5432/postgres",
    SUPABASE_URL: ref ? `https://${ref}.supabase.co` : "https://placeholder.supabase.co",
    SUPABASE_SECRET_KEYS: '{"default":"placeholder"}',
  };
  try {
    readEnv((name) => secrets.get(name) ?? platform[name]);
  } catch (err) {
    if (!(err instanceof EnvError)) throw err;
    if (!err.message.startsWith("TOKEN_ENCRYPTION_KEYS")) problems.push(err.message);
  }

  if (problems.length > 0) throw new SettingsError(problems.join("\n"));
  const sensitive = [accessToken!, ...secrets.values()];
  if (dbPassword) sensitive.push(dbPassword);
  if (dbUrl) {
    sensitive.push(dbUrl);
    const password = new URL(dbUrl).password;
    if (password) sensitive.push(password, decodeURIComponent(password));
  }
  for (const entry of keyRing!.split(",")) sensitive.push(entry.split(":").pop()!.trim());
  const functionsDbUrl = secrets.get("TETHER_DB_URL");
  if (functionsDbUrl) {
    const password = new URL(functionsDbUrl).password;
    if (password) sensitive.push(password, decodeURIComponent(password));
  }
  return {
    ref: ref!,
    accessToken: accessToken!,
    dbPassword,
    dbUrl,
    functionsUrl,
    invokeKey: secrets.get("TETHER_INVOKE_KEY")!,
    secrets,
    sensitive: sensitive.filter((s) => s.length >= 4),
  };
}

/** 32 random bytes, base64url: a TETHER_INVOKE_KEY no Supabase service would take. */
function newInvokeKey(): string {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...raw)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

/** The URL with its password replaced, for printing. */
function maskUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

function masker(sensitive: string[]): (text: string) => string {
  const values = [...sensitive].sort((a, b) => b.length - a.length);
  return (text) => values.reduce((out, secret) => out.replaceAll(secret, "***"), text);
}

// ---------------------------------------------------------------------------

interface Step {
  what: string;
  /** The command as printed (secrets masked or replaced by a file). */
  shown: string;
  /** Runs in both modes when true (the offline checks). */
  offline?: boolean;
  run: () => Promise<string | void>;
}

function envFileLine(name: string, value: string): string {
  if (/^[A-Za-z0-9_\-+/=.:,@]*$/.test(value)) return `${name}=${value}`;
  if (!value.includes("'")) return `${name}='${value}'`;
  return `${name}="${value}"`;
}

function sqlLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function vaultSql(functionsUrl: string, invokeKey: string): string {
  const upsert = (name: string, value: string, description: string) => `
  select id into existing from vault.secrets where name = ${sqlLiteral(name)};
  if existing is null then
    perform vault.create_secret(${sqlLiteral(value)}, ${sqlLiteral(name)}, ${
    sqlLiteral(description)
  });
  else
    perform vault.update_secret(existing, ${sqlLiteral(value)});
  end if;`;
  return `-- Tether's two Vault secrets, created or updated (idempotent).
do $tether$
declare
  existing uuid;
begin${upsert("tether_functions_url", functionsUrl, "Tether: base URL of the Edge Functions")}${
    upsert(
      "tether_invoke_key",
      invokeKey,
      "Tether: the key pg_cron calls the functions with (the functions' TETHER_INVOKE_KEY)",
    )
  }
end
$tether$;
`;
}

/** A private temporary file (0600) holding `text`; removed by the returned function. */
async function privateFile(text: string, suffix: string): Promise<[string, () => void]> {
  const file = await Deno.makeTempFile({ prefix: "tether-deploy-", suffix });
  await Deno.chmod(file, 0o600);
  await Deno.writeTextFile(file, text, { mode: 0o600 });
  const remove = () => {
    try {
      Deno.removeSync(file);
    } catch { /* already gone */ }
  };
  cleanups.add(remove);
  return [file, () => {
    remove();
    cleanups.delete(remove);
  }];
}

const cleanups = new Set<() => void>();

function plan(settings: Settings, options: Options, functions: () => FunctionConfig[]): Step[] {
  const { workdir } = options;
  const supabase = paths.supabaseBin;
  const mask = masker(settings.sensitive);
  // The CLI reads the access token and (for the linked project) the database password from
  // its environment; nothing else of ours is passed on.
  const childEnv: Record<string, string> = {};
  for (
    const name of [
      "PATH",
      "HOME",
      "USER",
      "TMPDIR",
      "LANG",
      "TERM",
      "XDG_CONFIG_HOME",
      "DOCKER_HOST",
      "SSL_CERT_FILE",
      "HTTPS_PROXY",
      "HTTP_PROXY",
      "NO_PROXY",
      "https_proxy",
      "http_proxy",
      "no_proxy",
    ]
  ) {
    const v = Deno.env.get(name);
    if (v !== undefined) childEnv[name] = v;
  }
  childEnv.SUPABASE_ACCESS_TOKEN = settings.accessToken;
  if (settings.dbPassword && !settings.dbUrl) childEnv.SUPABASE_DB_PASSWORD = settings.dbPassword;

  const cli = async (what: string, args: string[], cwd = workdir) => {
    const child = new Deno.Command(supabase, {
      args,
      cwd,
      env: childEnv,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Stream the CLI's output, masked, so progress shows and no secret is echoed.
    const pipe = async (stream: ReadableStream<Uint8Array>, write: (s: string) => void) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) write(mask(chunk));
    };
    const enc = new TextEncoder();
    const [status] = await Promise.all([
      child.status,
      pipe(child.stdout, (s) => Deno.stdout.writeSync(enc.encode(s))),
      pipe(child.stderr, (s) => Deno.stderr.writeSync(enc.encode(s))),
    ]);
    if (!status.success) {
      throw new StepError(`${what} failed (supabase exited with ${status.code}); see above`);
    }
  };
  // Database target: a URL if given (masked when shown), else the linked project with
  // SUPABASE_DB_PASSWORD in the CLI's environment.
  const remote = settings.dbUrl ? `--remote=${settings.dbUrl}` : "--remote";
  const remoteShown = settings.dbUrl ? `--remote=${maskUrl(settings.dbUrl)}` : "--remote";
  const dbAuth = settings.dbUrl ? "" : " (SUPABASE_DB_PASSWORD from the environment)";
  const ref = settings.ref;
  // Where the migrations are pushed from: the user's project (its history, Tether's copies
  // added by `install`), or this repository for a project used for Tether alone.
  const migrationsDir = options.projectDir ?? workdir;
  const inDir = options.projectDir ? ` (in ${options.projectDir})` : "";
  const linkedFile = join(migrationsDir, "supabase", ".temp", "project-ref");
  const linked = () => {
    try {
      return Deno.readTextFileSync(linkedFile).trim() === ref;
    } catch {
      return false;
    }
  };
  let checked: FunctionConfig[] = [];
  const names = functions().map((fn) => fn.name);

  const steps: Step[] = [
    {
      what: "check supabase/config.toml",
      shown: "parse it; one [functions.<name>] block with verify_jwt = false per function",
      offline: true,
      run: () => {
        checked = checkConfig(workdir);
        return Promise.resolve(`${checked.length} functions: ${names.join(", ")}`);
      },
    },
    {
      what: "check the functions' import graphs",
      shown: `deno info --json supabase/functions/<name>/index.ts (${names.length} functions)`,
      offline: true,
      run: async () => {
        const counts = await checkImportGraphs(workdir, checked);
        return Object.entries(counts).map(([n, c]) => `${n} ${c} modules`).join(", ");
      },
    },
    {
      what: "type-check the entry points",
      shown: `deno check ${names.map((n) => `supabase/functions/${n}/index.ts`).join(" ")}`,
      offline: true,
      run: async () => {
        await checkTypes(workdir, checked);
        return `${checked.length} entry points`;
      },
    },
    {
      what: "load what the CLI uploads, alone",
      shown: "each function's uploaded files (entry point, the imports the CLI walks, the import " +
        "map) copied to an empty directory without node_modules; deno cache there, npm: from " +
        "the registry",
      offline: true,
      run: async () => {
        const counts = await checkUploadedBundles(workdir, checked);
        return Object.entries(counts).map(([n, c]) => `${n} ${c} files`).join(", ");
      },
    },
    {
      what: "link the project",
      shown: `supabase link --project-ref ${ref}${inDir}${
        linked() ? " (already linked: skipped)" : ""
      }`,
      run: async () => {
        if (!linked()) await cli("supabase link", ["link", "--project-ref", ref], migrationsDir);
      },
    },
    ...(options.projectDir ? [installStep(options.projectDir, workdir)] : []),
    {
      what: "push the migrations",
      shown: `supabase db push ${remoteShown} --yes --skip-vault${dbAuth}${inDir}`,
      run: () =>
        cli("supabase db push", ["db", "push", remote, "--yes", "--skip-vault"], migrationsDir),
    },
    {
      what: "set the function secrets",
      shown: `supabase secrets set --env-file <private temp file: ${
        [...settings.secrets.keys()].join(", ")
      }> --remote=${ref} --yes`,
      run: async () => {
        const lines = [...settings.secrets].map(([n, v]) => envFileLine(n, v)).join("\n");
        const [file, remove] = await privateFile(`${lines}\n`, ".env");
        try {
          await cli("supabase secrets set", [
            "secrets",
            "set",
            "--env-file",
            file,
            `--remote=${ref}`,
            "--yes",
          ]);
        } finally {
          remove();
        }
      },
    },
    ...names.map((name): Step => ({
      what: `deploy function ${name}`,
      shown: `supabase functions deploy ${name} --remote=${ref} --yes`,
      run: () =>
        cli(`supabase functions deploy ${name}`, [
          "functions",
          "deploy",
          name,
          `--remote=${ref}`,
          "--yes",
        ]),
    })),
    {
      what: "store the Vault secrets",
      shown: `supabase db query ${remoteShown} --yes --file <private temp file: ` +
        `create or update ${VAULT_SECRETS[0]} = ${settings.functionsUrl}, ${
          VAULT_SECRETS[1]
        } = ***>`,
      run: async () => {
        const [file, remove] = await privateFile(
          vaultSql(settings.functionsUrl, settings.invokeKey),
          ".sql",
        );
        try {
          await cli("storing the Vault secrets", ["db", "query", remote, "--yes", "--file", file]);
        } finally {
          remove();
        }
      },
    },
    {
      what: "install the schedules",
      shown: `supabase db query ${remoteShown} --yes --file sql/schedules.sql`,
      run: () =>
        cli("installing the schedules", [
          "db",
          "query",
          remote,
          "--yes",
          "--file",
          join(workdir, "sql", "schedules.sql"),
        ]),
    },
    {
      what: "smoke check",
      shown: `supabase db query ${remoteShown} --read-only "${SMOKE_SQL}"`,
      run: () => cli("the smoke check", ["db", "query", remote, "--read-only", SMOKE_SQL]),
    },
  ];
  return steps;
}

/** Adds Tether's migrations (or a newer Tether's new ones) to the user's project. */
function installStep(projectDir: string, workdir: string): Step {
  let shown: string;
  try {
    const { plan } = planInstall(projectDir, tetherSource(workdir));
    shown = plan.written.length === 0
      ? `all ${plan.already} Tether migrations already in ${projectDir}/supabase/migrations`
      : `npm run tether -- install --project-dir ${projectDir}: ${plan.written.length} ` +
        `migration(s) added after the project's own (${
          plan.written.map((w) => w.file).join(", ")
        })`;
  } catch (err) {
    shown = `npm run tether -- install --project-dir ${projectDir}: ${(err as Error).message}`;
  }
  return {
    what: "add Tether's migrations to the project's",
    shown,
    run: () => {
      try {
        const { plan, files } = planInstall(projectDir, tetherSource(workdir));
        writePlan(projectDir, files);
        return Promise.resolve(`${plan.written.length} written`);
      } catch (err) {
        if (err instanceof CliError || err instanceof UsageErrorOfCli) {
          throw new StepError(err.message);
        }
        throw err;
      }
    },
  };
}

const SMOKE_SQL = "select (select count(*) from tether.connections) as connections, " +
  "(select count(*) from cron.job where jobname like 'tether-%') as schedules, " +
  "(select count(*) from vault.secrets where name in ('tether_functions_url', 'tether_invoke_key')) as vault_secrets";

function confirm(ref: string): boolean {
  if (!Deno.stdin.isTerminal()) return false;
  const answer = prompt(`Deploy Tether to project ${ref}? [y/N]`);
  return answer?.trim().toLowerCase() === "y" || answer?.trim().toLowerCase() === "yes";
}

async function main(): Promise<number> {
  let options: Options;
  let settings: Settings;
  try {
    options = parseArgs(Deno.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`deploy: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  try {
    settings = await readSettings((name) => Deno.env.get(name));
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    console.error(
      `deploy: the settings are incomplete; nothing was run.\n${
        err.message.split("\n").map((line) => `  - ${line}`).join("\n")
      }\n\nRun \`npm run deploy -- --help\` for every setting.`,
    );
    return 2;
  }
  const mask = masker(settings.sensitive);
  const say = (line: string) => console.log(mask(line));
  let functions: FunctionConfig[];
  try {
    functions = checkConfigLenient(options.workdir);
  } catch (err) {
    console.error(`deploy: ${(err as Error).message}`);
    return 1;
  }
  const steps = plan(settings, options, () => functions);
  const total = steps.length;
  say(
    `${
      options.dryRun ? "Dry run: deploy" : "Deploying"
    } Tether to project ${settings.ref} (functions at ${settings.functionsUrl})`,
  );
  if (!options.dryRun && !options.yes && !confirm(settings.ref)) {
    console.error("deploy: not confirmed; pass --yes to deploy without asking. Nothing was run.");
    return 2;
  }
  for (const [index, step] of steps.entries()) {
    say(`[${index + 1}/${total}] ${step.what}: ${step.shown}`);
    if (options.dryRun && !step.offline) continue;
    try {
      const note = await step.run();
      if (note) say(`      ok: ${note}`);
    } catch (err) {
      if (err instanceof CheckError || err instanceof StepError) {
        console.error(
          mask(
            `deploy: step ${index + 1}/${total} (${step.what}) failed:\n${
              err.message.split("\n").map((line) => `  ${line}`).join("\n")
            }`,
          ),
        );
        if (index + 1 < total && !step.offline) {
          console.error(
            "The steps before it are done; they are all safe to rerun, so fix the cause and run the deploy again.",
          );
        }
        return 1;
      }
      throw err;
    }
  }
  say(
    options.dryRun
      ? `Dry run complete: the offline checks passed; ${
        total - steps.filter((s) => s.offline).length
      } steps would change project ${settings.ref}.`
      : `Deployed to ${settings.ref}.`,
  );
  return 0;
}

/** The function list for printing the plan; the real check is step 1. */
function checkConfigLenient(workdir: string): FunctionConfig[] {
  try {
    return checkConfig(workdir);
  } catch (err) {
    if (!(err instanceof CheckError)) throw err;
    // Fall back to the directories, so the plan still prints and step 1 reports the problem.
    return functionNames(workdir).map((name) => ({ name }));
  }
}

if (import.meta.main) {
  const onSignal = () => {
    for (const cleanup of cleanups) cleanup();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code: number;
  try {
    code = await main();
  } finally {
    for (const cleanup of cleanups) cleanup();
  }
  Deno.exit(code);
}
