/**
 * CLI: `deno run -A sandbox/main.ts --port 54329 [--hostname 127.0.0.1] [--latency-ms 0]
 * [--exit-with-stdin yes]`. Prints `sandbox listening on <url>` and serves until SIGINT/SIGTERM
 * (or, with --exit-with-stdin yes, until its stdin closes: the process that started it is gone).
 */
import { startSandbox } from "./server.ts";

const DEFAULTS: Record<string, string> = {
  port: "54329",
  hostname: "127.0.0.1",
  "latency-ms": "0",
  "exit-with-stdin": "no",
};

function fail(message: string): never {
  console.error(`sandbox: ${message}`);
  Deno.exit(2);
}

/** `--name value` and `--name=value`; unknown flags are an error. */
function parseFlags(args: string[]): Record<string, string> {
  const out = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1]! in DEFAULTS)) fail(`unknown argument ${JSON.stringify(arg)}`);
    const value = m[2] ?? args[++i];
    if (value === undefined) fail(`--${m[1]} needs a value`);
    out[m[1]!] = value;
  }
  return out;
}

function intFlag(flags: Record<string, string>, name: string): number {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
}

const flags = parseFlags(Deno.args);
const sandbox = await startSandbox({
  port: intFlag(flags, "port"),
  hostname: flags.hostname,
  latencyMs: intFlag(flags, "latency-ms"),
}).catch((err) => {
  if (err instanceof Deno.errors.AddrInUse) fail(`port ${flags.port} is already in use`);
  throw err;
});
console.log(`sandbox listening on ${sandbox.url}`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`sandbox: ${signal}, shutting down`);
  await sandbox.close();
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));

if (flags["exit-with-stdin"] === "yes") {
  (async () => {
    const buffer = new Uint8Array(64);
    try {
      while ((await Deno.stdin.read(buffer)) !== null) { /* nothing is sent */ }
    } catch { /* closed */ }
    await stop("stdin closed");
  })();
}
