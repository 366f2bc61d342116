// Small helpers shared by the local-stack scripts.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
// TETHER_STATE_DIR lets a second, throwaway stack live elsewhere (tests use it).
const state = Deno.env.get("TETHER_STATE_DIR") || join(root, ".tether");

export const paths = {
  root,
  state,
  pgRoot: join(state, "pg"),
  pgData: join(state, "pg", "data"),
  socketDir: join(state, "pg", "run"),
  /** Which pg_net and Vault the cluster was created with (scripts/local/postgres.ts). */
  pgNetMode: join(state, "pg", "pgnet_mode"),
  /** The real Vault's root key and the script that hands it to the server at start. */
  vaultRootKey: join(state, "pg", "vault_root.key"),
  vaultGetkey: join(state, "pg", "vault_getkey.sh"),
  secrets: join(state, "secrets.json"),
  stackEnv: join(state, "stack.env"),
  servePid: join(state, "serve.pid"),
  serveLog: join(state, "serve.log"),
  supabaseBin: join(root, "node_modules", ".bin", "supabase"),
};

/** An expected failure with a message for a person: printed without a stack trace. */
export class StackError extends Error {}

export function fail(message: string): never {
  throw new StackError(message);
}

export interface RunOptions {
  env?: Record<string, string>;
  quiet?: boolean;
  hint?: string;
  cwd?: string;
}

/** Runs a command; on failure, throws with its output (which never holds secrets here). */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd ?? root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!opts.quiet && stdout.trim()) console.log(stdout.trimEnd());
  if (out.code !== 0) {
    const name = [cmd, ...args.slice(0, 3)].join(" ");
    fail(
      `${name} failed (exit ${out.code})${opts.hint ? `; ${opts.hint}` : ""}\n${
        (stderr || stdout).trim()
      }`,
    );
  }
  return stdout;
}

export const runQuiet = (cmd: string, args: string[]) => run(cmd, args, { quiet: true });

export function isPortFree(port: number, hostname = "127.0.0.1"): boolean {
  try {
    const listener = Deno.listen({ port, hostname });
    listener.close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) return false;
    throw err;
  }
}

export function freePort(): number {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

export function envInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    fail(`${name} must be a port number, got "${raw}"`);
  }
  return n;
}
