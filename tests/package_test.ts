// package.json and package-lock.json as a fresh clone meets them (#13): `engines` says the Node
// version the dependencies require; `npm install` leaves the lock as committed, on this platform
// and on macOS and arm64 (the lock carries every platform's optional Deno and Supabase CLI
// binaries).
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { paths } from "../scripts/local/util.ts";

interface LockEntry {
  version?: string;
  integrity?: string;
  engines?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  os?: string[];
  cpu?: string[];
}
const lockText = Deno.readTextFileSync(join(paths.root, "package-lock.json"));
const lock = JSON.parse(lockText) as { packages: Record<string, LockEntry> };
const pkg = JSON.parse(Deno.readTextFileSync(join(paths.root, "package.json")));

/** The lowest Node major a range admits ("^14.21.3 || >=16" → 14; ">=22.0.0" → 22). */
function minimumMajor(range: string): number {
  const mins = range.split("||").map((part) => {
    const m = /(?:>=|\^|~)?\s*v?(\d+)/.exec(part.trim());
    if (!m) throw new Error(`unreadable engines range "${range}"`);
    return Number(m[1]);
  });
  return Math.min(...mins);
}

Deno.test("engines.node is the newest minimum any locked dependency declares", () => {
  let required = 0;
  let by = "";
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = entry.engines?.node;
    if (!path || !range) continue;
    const min = minimumMajor(range);
    if (min > required) [required, by] = [min, `${path} (${range})`];
  }
  assert.ok(required >= 22, `expected a dependency to need Node 22 (found ${by})`);
  assert.equal(pkg.engines.node, `>=${required}`, `the dependencies need ${by}`);
  assert.equal(lock.packages[""]?.engines?.node, pkg.engines.node, "the lock's root agrees");
});

Deno.test("the lock has every platform's Deno and Supabase CLI binary, pinned", () => {
  for (const parent of ["node_modules/deno", "node_modules/supabase"]) {
    const optional = Object.keys(lock.packages[parent]?.optionalDependencies ?? {});
    assert.ok(optional.length >= 6, `${parent} declares its platform binaries`);
    const platforms = new Set<string>();
    for (const name of optional) {
      const entry = lock.packages[`node_modules/${name}`];
      // (No "resolved": npm leaves the registry URL out when omit-lockfile-registry-resolved is on.)
      assert.ok(entry?.version && entry.integrity, `${name} is locked with its version and hash`);
      for (const os of entry.os ?? []) {
        for (const cpu of entry.cpu ?? []) platforms.add(`${os}-${cpu}`);
      }
    }
    for (const wanted of ["darwin-arm64", "darwin-x64", "linux-arm64", "linux-x64"]) {
      assert.ok(platforms.has(wanted), `${parent} has a binary for ${wanted}`);
    }
  }
});

Deno.test("npm install leaves package-lock.json unchanged, here and for macOS and arm64", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "tether-lock-" });
  try {
    for (const file of ["package.json", "package-lock.json"]) {
      cpSync(join(paths.root, file), join(dir, file));
    }
    for (
      const platform of [[], ["--os=darwin", "--cpu=arm64"], ["--os=darwin", "--cpu=x64"], [
        "--os=linux",
        "--cpu=arm64",
      ]]
    ) {
      // The resolution npm install does, without downloading the tarballs; on Node 20 (this
      // machine) it warns EBADENGINE for supabase-js and still succeeds.
      const out = await new Deno.Command("npm", {
        args: [
          "install",
          "--package-lock-only",
          "--ignore-scripts",
          "--no-audit",
          "--no-fund",
          ...platform,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(
        Deno.readTextFileSync(join(dir, "package-lock.json")),
        lockText,
        `npm install ${platform.join(" ")} rewrote the lock`,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
