// The browser the console's tests drive: Debian's Chromium (/usr/bin/chromium), driven by npm
// playwright-core; never a browser Playwright downloads. `npm test` installs it when missing, as
// it installs PostgreSQL (./postgres.ts): apt-get, as root, without recommended packages.
import { existsSync } from "node:fs";
import { fail } from "./util.ts";

export const CHROMIUM = "/usr/bin/chromium";

/**
 * What Chromium needs to start quickly on a closed network: no sandbox (tests run as root), no
 * GPU, no QUIC, and none of the background fetches (updates, sync, first-run) that stall it.
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Installs Debian's chromium when it is missing. */
export async function ensureChromium(say: (line: string) => void = console.log): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (!existsSync("/usr/bin/apt-get")) {
    fail(`The console's browser tests need Chromium at ${CHROMIUM}; install it first.`);
  }
  if (Deno.uid() !== 0) {
    fail(
      `The console's browser tests need Chromium at ${CHROMIUM}. Run as root, or install it ` +
        "first: sudo apt-get install -y chromium",
    );
  }
  say("Installing chromium from Debian (the console's browser tests)...");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  for (
    const args of [["update", "-qq"], [
      "install",
      "-y",
      "-qq",
      "--no-install-recommends",
      "chromium",
    ]]
  ) {
    const out = await new Deno.Command("apt-get", { args, env, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) {
      fail(`apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
  }
}
