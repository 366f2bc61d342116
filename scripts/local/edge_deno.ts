// The Deno that runs functions locally: the version Supabase's Edge Runtime embeds, so an API the
// platform lacks fails here first. supabase/edge-runtime v1.74.0 (April 2026) builds on the crate
// in its `deno/` folder, version 2.1.4 (deno/Cargo.toml). The npm package `deno` publishes every
// release; this one is installed on demand into the state directory, apart from the project's own
// (newer) Deno, whose `node_modules/.bin/deno` must stay the toolchain's.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { paths, run } from "./util.ts";

export const EDGE_RUNTIME_DENO = "2.1.4";

const prefix = join(paths.state, `edge-runtime-deno-${EDGE_RUNTIME_DENO}`);
const binary = join(prefix, "node_modules", "deno", "deno");

/** Installs the Edge Runtime's Deno when it is missing (from the npm registry). */
export async function ensureEdgeDeno(): Promise<void> {
  if (existsSync(binary)) return;
  console.log(`Installing Deno ${EDGE_RUNTIME_DENO} (the Edge Runtime's) for the functions...`);
  await Deno.mkdir(prefix, { recursive: true });
  await run("npm", [
    "install",
    "--prefix",
    prefix,
    "--no-save",
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
    `deno@${EDGE_RUNTIME_DENO}`,
  ], { quiet: true, hint: "npm could not install the Edge Runtime's Deno" });
}

/** The binary functions run on: the Edge Runtime's Deno once installed, else this Deno. */
export function edgeDenoPath(): string {
  return existsSync(binary) ? binary : Deno.execPath();
}
