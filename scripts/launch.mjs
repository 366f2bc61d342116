#!/usr/bin/env node
// Entry point of every npm script. A fresh clone has Node and npm and nothing
// else of ours, so this installs the npm dependencies (Deno and the Supabase
// CLI among them) when they are missing or stale, then hands over to the Deno
// script that does the real work. Plain Node, no dependencies.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const scripts = {
  start: "scripts/start.ts",
  test: "scripts/test.ts",
  stack: "scripts/stack.ts",
  bench: "scripts/bench/main.ts",
  cli: "scripts/cli.ts",
  deploy: "scripts/deploy.ts",
  "schema:dump": "scripts/schema_dump.ts",
};

const [command, ...args] = process.argv.slice(2);
const script = scripts[command];
if (!script) {
  console.error(
    `launch.mjs: unknown command "${command}" (one of ${Object.keys(scripts).join(", ")})`,
  );
  process.exit(2);
}

ensureNpmDependencies();
const deno = join(root, "node_modules", ".bin", "deno");
const child = spawn(deno, ["run", "-A", join(root, script), ...args], {
  cwd: root,
  stdio: "inherit",
});
// Ctrl-C reaches the child from the terminal; wait for it to clean up.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("error", (err) => {
  console.error(`launch.mjs: could not run deno: ${err.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

function ensureNpmDependencies() {
  const stamp = join(root, "node_modules", ".tether-installed");
  const manifest = existsSync(join(root, "package-lock.json"))
    ? "package-lock.json"
    : "package.json";
  const wanted = readFileSync(join(root, manifest), "utf8");
  const installed = existsSync(stamp) ? readFileSync(stamp, "utf8") : "";
  if (installed === wanted && existsSync(join(root, "node_modules", ".bin", "deno"))) return;
  console.error("Installing npm dependencies (Deno, the Supabase CLI, libraries)...");
  // `npm install` rather than `npm ci`: the lock pins versions, and npm's lock
  // omits other platforms' optional binaries, which `npm ci` would reject.
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const run = spawnSync(npm, ["install", "--no-audit", "--no-fund"], {
    cwd: root,
    stdio: "inherit",
  });
  if (run.status !== 0) {
    console.error("launch.mjs: npm install failed; see the output above.");
    process.exit(run.status ?? 1);
  }
  writeFileSync(stamp, wanted);
}
