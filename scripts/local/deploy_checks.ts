// Checks run before a deploy (and by `npm run deploy -- --dry-run`): supabase/config.toml
// parses and declares every function with verify_jwt = false, every function's import graph
// stays inside the repository (plus npm packages mapped by the import map the Supabase CLI will
// use), every entry point type-checks, and the file set the CLI uploads for each function loads
// on its own, in an empty directory without node_modules (checkUploadedBundles, the only check
// that reaches the network: the npm registry, as the bundler does).
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// ---------------------------------------------------------------------------
// A minimal TOML parser: tables, dotted/quoted keys, strings, integers, floats,
// booleans and single-line arrays of those. Anything else is an error naming
// the line, so a config this cannot read is reported rather than misread.

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {}

export function parseToml(text: string, file = "config.toml"): TomlTable {
  const root: TomlTable = {};
  const definedTables = new Set<string>();
  let current = root;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const where = `${file}:${index + 1}`;
    const line = stripComment(raw, where).trim();
    if (line === "") return;
    if (line.startsWith("[[")) {
      throw new TomlError(`${where}: arrays of tables ([[...]]) are not supported by this check`);
    }
    if (line.startsWith("[")) {
      if (!line.endsWith("]")) throw new TomlError(`${where}: table header is missing its "]"`);
      const path = parseKey(line.slice(1, -1), where);
      const name = path.join(".");
      if (definedTables.has(name)) {
        throw new TomlError(`${where}: table [${name}] is defined twice`);
      }
      definedTables.add(name);
      current = descend(root, path, where);
      return;
    }
    const eq = findUnquoted(line, "=");
    if (eq < 0) throw new TomlError(`${where}: expected key = value or [table]`);
    const path = parseKey(line.slice(0, eq), where);
    const { value, rest } = parseValue(line.slice(eq + 1).trim(), where);
    if (rest.trim() !== "") throw new TomlError(`${where}: unexpected text after the value`);
    const table = descend(current, path.slice(0, -1), where);
    const key = path[path.length - 1]!;
    if (key in table) throw new TomlError(`${where}: key "${path.join(".")}" is set twice`);
    table[key] = value;
  });
  return root;
}

function stripComment(line: string, where: string): string {
  const hash = findUnquoted(line, "#", where);
  return hash < 0 ? line : line.slice(0, hash);
}

/** Index of `char` outside quoted strings, or -1. */
function findUnquoted(text: string, char: string, where = ""): number {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === char) return i;
  }
  if (quote && where) throw new TomlError(`${where}: unterminated string`);
  return -1;
}

function parseKey(text: string, where: string): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  while (true) {
    if (rest.startsWith('"') || rest.startsWith("'")) {
      const { value, rest: after } = parseString(rest, where);
      parts.push(value);
      rest = after.trim();
    } else {
      const match = /^[A-Za-z0-9_-]+/.exec(rest);
      if (!match) throw new TomlError(`${where}: invalid key "${text.trim()}"`);
      parts.push(match[0]);
      rest = rest.slice(match[0].length).trim();
    }
    if (rest === "") return parts;
    if (!rest.startsWith(".")) throw new TomlError(`${where}: invalid key "${text.trim()}"`);
    rest = rest.slice(1).trim();
  }
}

function descend(table: TomlTable, path: string[], where: string): TomlTable {
  let node = table;
  for (const part of path) {
    const next = node[part];
    if (next === undefined) node = node[part] = {};
    else if (typeof next === "object" && !Array.isArray(next)) node = next;
    else throw new TomlError(`${where}: "${part}" is a value, not a table`);
  }
  return node;
}

function parseString(text: string, where: string): { value: string; rest: string } {
  const quote = text[0]!;
  if (text.startsWith(quote.repeat(3))) {
    throw new TomlError(`${where}: multi-line strings are not supported by this check`);
  }
  let value = "";
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === quote) return { value, rest: text.slice(i + 1) };
    if (c === "\\" && quote === '"') {
      const next = text[++i];
      const escapes: Record<string, string> = {
        n: "\n",
        t: "\t",
        r: "\r",
        '"': '"',
        "\\": "\\",
        b: "\b",
        f: "\f",
      };
      if (next === "u" || next === "U") {
        const width = next === "u" ? 4 : 8;
        const hex = text.slice(i + 1, i + 1 + width);
        if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== width) {
          throw new TomlError(`${where}: invalid \\${next} escape`);
        }
        value += String.fromCodePoint(parseInt(hex, 16));
        i += width;
      } else if (next !== undefined && next in escapes) value += escapes[next];
      else throw new TomlError(`${where}: invalid escape \\${next ?? ""}`);
    } else value += c;
  }
  throw new TomlError(`${where}: unterminated string`);
}

function parseValue(text: string, where: string): { value: TomlValue; rest: string } {
  if (text === "") throw new TomlError(`${where}: missing value after "="`);
  if (text.startsWith('"') || text.startsWith("'")) return parseString(text, where);
  if (text.startsWith("[")) {
    const items: TomlValue[] = [];
    let rest = text.slice(1).trim();
    while (!rest.startsWith("]")) {
      if (rest === "") throw new TomlError(`${where}: arrays must close on the same line`);
      const item = parseValue(rest, where);
      items.push(item.value);
      rest = item.rest.trim();
      if (rest.startsWith(",")) rest = rest.slice(1).trim();
      else if (!rest.startsWith("]")) throw new TomlError(`${where}: expected "," or "]"`);
    }
    return { value: items, rest: rest.slice(1) };
  }
  if (text.startsWith("{")) {
    throw new TomlError(`${where}: inline tables are not supported by this check`);
  }
  const match = /^[^\s,\]]+/.exec(text)!;
  const token = match[0];
  const rest = text.slice(token.length);
  if (token === "true" || token === "false") return { value: token === "true", rest };
  const digits = token.replaceAll("_", "");
  if (/^[+-]?\d+$/.test(digits) || /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(digits)) {
    return { value: Number(digits), rest };
  }
  throw new TomlError(`${where}: unsupported value "${token}"`);
}

// ---------------------------------------------------------------------------

export class CheckError extends Error {}

/** Function directories under supabase/functions (the CLI skips names starting with _ or .). */
export function functionNames(workdir: string): string[] {
  const dir = join(workdir, "supabase", "functions");
  const names: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    names.push(entry.name);
  }
  return names.sort();
}

export interface FunctionConfig {
  name: string;
  /** The import map the Supabase CLI will bundle the function with, if any. */
  importMap?: string;
  /**
   * `static_files`: files shipped with the function besides its imports (paths or globs relative
   * to supabase/, Supabase CLI 2.7.0+, supabase.com/changelog/32815-add-static-files-to-edge-functions),
   * expanded to repository paths.
   */
  staticFiles: string[];
}

/**
 * Expands a `static_files` entry (relative to supabase/; a `*` in the file name only) to the
 * repository paths it names.
 */
function expandStatic(workdir: string, entry: string): string[] {
  const rel = posix.normalize(posix.join("supabase", entry));
  const dir = posix.dirname(rel);
  const base = posix.basename(rel);
  if (!base.includes("*")) return existsSync(join(workdir, rel)) ? [rel] : [];
  const pattern = new RegExp(
    `^${base.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}$`,
  );
  if (!existsSync(join(workdir, dir))) return [];
  return [...Deno.readDirSync(join(workdir, dir))]
    .filter((e) => e.isFile && pattern.test(e.name))
    .map((e) => `${dir}/${e.name}`)
    .sort();
}

/**
 * supabase/config.toml parses; one [functions.NAME] block per function directory, each with
 * verify_jwt = false (the functions check their callers themselves), and no block without
 * a directory.
 */
export function checkConfig(workdir: string): FunctionConfig[] {
  const file = join(workdir, "supabase", "config.toml");
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    throw new CheckError(`supabase/config.toml not found in ${workdir}`);
  }
  let config: TomlTable;
  try {
    config = parseToml(text, "supabase/config.toml");
  } catch (err) {
    if (err instanceof TomlError) throw new CheckError(err.message);
    throw err;
  }
  const names = functionNames(workdir);
  if (names.length === 0) throw new CheckError("supabase/functions/ has no function directories");
  const blocks = (config.functions ?? {}) as TomlTable;
  if (typeof blocks !== "object" || Array.isArray(blocks)) {
    throw new CheckError("supabase/config.toml: functions must be a table");
  }
  const problems: string[] = [];
  const result: FunctionConfig[] = [];
  for (const name of names) {
    if (!existsSync(join(workdir, "supabase", "functions", name, "index.ts"))) {
      problems.push(`supabase/functions/${name}/ has no index.ts`);
    }
    const block = blocks[name];
    if (block === undefined || typeof block !== "object" || Array.isArray(block)) {
      problems.push(
        `supabase/config.toml has no [functions.${name}] block: add one with verify_jwt = false`,
      );
      continue;
    }
    if (block.verify_jwt !== false) {
      problems.push(
        `[functions.${name}] must set verify_jwt = false (the function checks its caller itself)`,
      );
    }
    if (block.enabled === false) problems.push(`[functions.${name}] has enabled = false`);
    const importMap = block.import_map;
    if (importMap !== undefined && typeof importMap !== "string") {
      problems.push(`[functions.${name}] import_map must be a string`);
    }
    const declared = block.static_files ?? [];
    if (!Array.isArray(declared) || declared.some((f) => typeof f !== "string")) {
      problems.push(`[functions.${name}] static_files must be an array of paths`);
      continue;
    }
    const staticFiles: string[] = [];
    for (const entry of declared as string[]) {
      const found = expandStatic(workdir, entry);
      if (found.length === 0) {
        problems.push(`[functions.${name}] static_files "${entry}" names no file`);
      }
      staticFiles.push(...found);
    }
    // A function's static/ folder is what it reads at run time: every file of it must ship.
    const staticDir = join(workdir, "supabase", "functions", name, "static");
    if (existsSync(staticDir)) {
      for (const e of Deno.readDirSync(staticDir)) {
        const path = `supabase/functions/${name}/static/${e.name}`;
        if (e.isFile && !staticFiles.includes(path)) {
          problems.push(
            `[functions.${name}] does not ship ${path}: add it to static_files ` +
              `(e.g. static_files = ["./functions/${name}/static/*"])`,
          );
        }
      }
    }
    result.push({
      name,
      importMap: typeof importMap === "string" ? importMap : undefined,
      staticFiles,
    });
  }
  for (const name of Object.keys(blocks)) {
    if (!names.includes(name)) {
      problems.push(
        `supabase/config.toml has [functions.${name}] but no supabase/functions/${name}/ directory`,
      );
    }
  }
  if (problems.length > 0) throw new CheckError(problems.join("\n"));
  return result;
}

/**
 * The import map the Supabase CLI uses for a function (same order as the CLI): config.toml's
 * import_map (relative to supabase/), else deno.json / deno.jsonc beside the entry point, else
 * supabase/functions/import_map.json. (An import_map.json beside the entry point is an error
 * to the CLI; checkImportGraphs reports it.)
 */
export function importMapFor(workdir: string, fn: FunctionConfig): string | undefined {
  const supabaseDir = join(workdir, "supabase");
  if (fn.importMap) {
    return isAbsolute(fn.importMap) ? fn.importMap : resolve(supabaseDir, fn.importMap);
  }
  const dir = join(supabaseDir, "functions", fn.name);
  for (const candidate of ["deno.json", "deno.jsonc"]) {
    if (existsSync(join(dir, candidate))) return join(dir, candidate);
  }
  const shared = join(supabaseDir, "functions", "import_map.json");
  return existsSync(shared) ? shared : undefined;
}

function readImports(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    // deno.jsonc: drop whole-line comments, which is all a config like ours would hold.
    parsed = JSON.parse(Deno.readTextFileSync(file).replace(/^\s*\/\/.*$/gm, ""));
  } catch (err) {
    throw new CheckError(`${file} is not readable JSON: ${(err as Error).message}`);
  }
  const imports = (parsed as { imports?: unknown }).imports;
  if (imports === undefined) return {};
  if (typeof imports !== "object" || imports === null) {
    throw new CheckError(`${file}: "imports" must be an object`);
  }
  return imports as Record<string, string>;
}

interface InfoModule {
  specifier: string;
  kind?: string;
  local?: string;
  error?: string;
  dependencies?: { specifier: string; code?: { specifier?: string; error?: string } }[];
}

const isRelative = (s: string) => s.startsWith("./") || s.startsWith("../") || s.startsWith("/");

function mapped(imports: Record<string, string>, specifier: string): boolean {
  if (specifier in imports) return true;
  return Object.keys(imports).some((key) => key.endsWith("/") && specifier.startsWith(key));
}

/**
 * Every module of every function's graph (from `deno info --json`) is a file inside the
 * repository (npm packages resolve to node_modules here); no https:, jsr: or other remote
 * modules; every bare specifier is mapped by the import map the CLI will deploy with, to an
 * npm: package or a file inside the repository. Returns the module count per function.
 */
export async function checkImportGraphs(
  workdir: string,
  functions: FunctionConfig[],
  deno = Deno.execPath(),
): Promise<Record<string, number>> {
  const root = realpathSync(workdir);
  const inside = (path: string) => {
    let real = path;
    try {
      real = realpathSync(path);
    } catch { /* reported as a resolution error below */ }
    const rel = relative(root, real);
    return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
  };
  // npm packages: node_modules (which Deno resolves through symlinks) counts as inside.
  let npmDir: string | undefined;
  try {
    npmDir = realpathSync(join(workdir, "node_modules"));
  } catch { /* no local npm packages */ }
  const isNpmFile = (path: string) => {
    if (!npmDir) return false;
    const rel = relative(npmDir, path);
    return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
  };
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  for (const fn of functions) {
    const entry = join("supabase", "functions", fn.name, "index.ts");
    const out = await new Deno.Command(deno, {
      args: ["info", "--json", entry],
      cwd: workdir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      problems.push(
        `${fn.name}: deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
      continue;
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
    counts[fn.name] = info.modules.length;
    const importMap = importMapFor(workdir, fn);
    if (
      !fn.importMap &&
      existsSync(join(workdir, "supabase", "functions", fn.name, "import_map.json"))
    ) {
      problems.push(
        `${fn.name}: the Supabase CLI no longer accepts an import_map.json beside the entry point; ` +
          `rename it to deno.json or set import_map in [functions.${fn.name}]`,
      );
    }
    let imports: Record<string, string> | undefined;
    if (importMap) {
      if (!existsSync(importMap)) {
        problems.push(`${fn.name}: its import map ${relative(root, importMap)} does not exist`);
      } else if (!inside(importMap)) {
        problems.push(`${fn.name}: its import map ${importMap} is outside the repository`);
      } else imports = readImports(importMap);
    }
    const unmappedNoMap = new Set<string>();
    const unmapped = new Set<string>();
    for (const module of info.modules) {
      const spec = module.specifier;
      if (module.error) problems.push(`${fn.name}: ${spec} does not resolve: ${module.error}`);
      else if (spec.startsWith("file://")) {
        const path = fileURLToPath(spec);
        if (!inside(path) && !isNpmFile(path)) {
          problems.push(`${fn.name}: imports ${path}, outside the repository`);
        }
      } else if (!spec.startsWith("npm:") && !spec.startsWith("node:")) {
        problems.push(
          `${fn.name}: imports the remote module ${spec} (only repository files and npm packages deploy reproducibly)`,
        );
      }
      for (const dep of module.dependencies ?? []) {
        const written = dep.specifier;
        if (dep.code?.error) {
          problems.push(`${fn.name}: "${written}" in ${spec} does not resolve: ${dep.code.error}`);
        }
        if (isRelative(written) || written.startsWith("node:") || written.startsWith("npm:")) {
          continue;
        }
        if (/^[a-z][a-z0-9+.-]*:/i.test(written) && !written.startsWith("@")) {
          problems.push(`${fn.name}: ${spec} imports the remote specifier ${written}`);
          continue;
        }
        // A bare specifier ("zod", "@supabase/supabase-js"): the deployed bundle resolves it
        // through the import map the CLI picks, so it must be mapped there.
        if (!imports) unmappedNoMap.add(written);
        else if (!mapped(imports, written)) unmapped.add(written);
      }
    }
    if (unmappedNoMap.size > 0) {
      problems.push(
        `${fn.name}: imports ${[...unmappedNoMap].map((s) => `"${s}"`).join(", ")} ` +
          `but the Supabase CLI would bundle it with no import map (it looks beside the entry ` +
          `point and in supabase/functions/import_map.json, not at the repository's deno.json); ` +
          `add import_map = "./functions/import_map.json" (imports only) to [functions.${fn.name}] ` +
          "in supabase/config.toml",
      );
    }
    if (unmapped.size > 0) {
      problems.push(
        `${fn.name}: ${[...unmapped].map((s) => `"${s}"`).join(", ")} not mapped in ` +
          `${relative(root, importMap!)} "imports"`,
      );
    }
    if (imports) {
      for (const [key, target] of Object.entries(imports)) {
        if (target.startsWith("npm:") || target.startsWith("node:")) continue;
        if (isRelative(target) && inside(resolve(join(importMap!, ".."), target))) continue;
        problems.push(
          `${fn.name}: import map entry "${key}" points at ${target} (npm: packages or repository files only)`,
        );
      }
    }
  }
  if (problems.length > 0) throw new CheckError([...new Set(problems)].join("\n"));
  return counts;
}

/** `deno check` of every entry point, run from the repository so its deno.json applies. */
export async function checkTypes(
  workdir: string,
  functions: FunctionConfig[],
  deno = Deno.execPath(),
): Promise<void> {
  const entries = functions.map((fn) => join("supabase", "functions", fn.name, "index.ts"));
  const out = await new Deno.Command(deno, {
    args: ["check", "--quiet", ...entries],
    cwd: workdir,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (out.code !== 0) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new CheckError(`deno check failed:\n${text.trim()}`);
  }
}

// ---------------------------------------------------------------------------
// What `supabase functions deploy` uploads, and whether that alone loads.
//
// The CLI's server-side bundler uploads, per function, the import map named for it and the
// files it reaches from the entry point by matching import statements with a regular
// expression, never node_modules (supabase/cli apps/cli-go/pkg/function/deploy.go `writeForm`,
// and deno.go `importPathPattern` / `WalkImportPaths`, at 1d1e719). A file the walk misses is
// skipped with a warning and simply absent from the upload. These functions follow that code;
// checkUploadedBundles then loads each upload the way the bundler does: Deno resolving `npm:`
// from the registry, a deno.json import map read as the Deno config it is.

/** supabase/cli's importPathPattern (apps/cli-go/pkg/function/deno.go), as a JS regex. */
const IMPORT_PATH_PATTERN =
  /(?:import|export)\s+(?:type\s+)?(?:{[^{}]+}|.*?)\s*(?:from)?\s*['"](.*?)['"]|import\(\s*['"](.*?)['"]\)/gi;

const isDenoConfig = (file: string) => /^deno\.jsonc?$/i.test(posix.basename(file));

/** The import map's "imports", each target resolved against the map's directory (deno.go `Resolve`). */
function uploadImports(mapPath: string): Record<string, string> {
  const imports = readImports(mapPath);
  const resolved: Record<string, string> = {};
  for (const [key, target] of Object.entries(imports)) {
    if (target.startsWith("/") || /^[a-z][a-z0-9+.-]*:/i.test(target)) resolved[key] = target;
    else {
      let joined = posix.join(posix.dirname(mapPath), target);
      if (target.endsWith("/")) joined += "/";
      resolved[key] = joined.startsWith("/") || joined.startsWith("../") ? joined : `./${joined}`;
    }
  }
  return resolved;
}

export interface UploadSet {
  /** Paths relative to the project directory, as the CLI uploads them. */
  files: string[];
  /** The import map among them, if any. */
  importMap?: string;
  /** Imports the walk followed to a file that does not exist (the CLI warns and goes on). */
  missing: string[];
}

/** The files `supabase functions deploy <name>` uploads for one function (deno.go `WalkImportPaths`). */
export function uploadSet(workdir: string, fn: FunctionConfig): UploadSet {
  const mapAbs = importMapFor(workdir, fn);
  const importMap = mapAbs ? relative(workdir, mapAbs).split("\\").join("/") : undefined;
  const imports = importMap && existsSync(mapAbs!) ? uploadImports(importMap) : {};
  const files: string[] = importMap ? [importMap] : [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const queue = [`supabase/functions/${fn.name}/index.ts`];
  while (queue.length > 0) {
    const current = queue.pop()!;
    if (seen.has(current)) continue;
    seen.add(current);
    let text: string;
    try {
      text = readFileSync(join(workdir, current), "utf8");
    } catch {
      missing.push(current);
      continue;
    }
    files.push(current);
    for (const match of text.matchAll(IMPORT_PATH_PATTERN)) {
      let mod = (match[1] || match[2] || "").trim();
      let substituted = false;
      for (const [key, target] of Object.entries(imports)) {
        if (mod.startsWith(key)) {
          mod = target + mod.slice(key.length);
          substituted = true;
        }
      }
      if (posix.extname(mod) === "") continue;
      const rel = mod.startsWith("./") || mod.startsWith("../");
      if (!rel && !mod.startsWith("/")) continue;
      if (rel && !substituted) mod = posix.join(posix.dirname(current), mod);
      queue.push(posix.normalize(mod));
    }
  }
  files.push(...fn.staticFiles);
  return { files: [...new Set(files)], importMap, missing };
}

/**
 * Copies each function's upload set into an empty directory (no node_modules, no deno.json but
 * the import map itself) and loads the entry point's whole graph there (`deno cache`: every
 * module read, every specifier resolved, `npm:` packages fetched from the registry), which is
 * what the bundler does; types are checked by checkTypes. Returns the files uploaded per function.
 */
export async function checkUploadedBundles(
  workdir: string,
  functions: FunctionConfig[],
  deno = Deno.execPath(),
): Promise<Record<string, number>> {
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  for (const fn of functions) {
    const set = uploadSet(workdir, fn);
    counts[fn.name] = set.files.length;
    for (const file of set.missing) {
      problems.push(`${fn.name}: ${file} is imported but does not exist, so it is not uploaded`);
    }
    if (set.importMap) {
      const keys = Object.keys(
        JSON.parse(readFileSync(join(workdir, set.importMap), "utf8").replace(/^\s*\/\/.*$/gm, "")),
      );
      const extra = keys.filter((k) => !["imports", "scopes", "compilerOptions"].includes(k));
      // The versions deployed are the versions tested: the map agrees with the repository's
      // development config (deno.json) on every package both name.
      const devConfig = join(workdir, "deno.json");
      if (!isDenoConfig(set.importMap) && existsSync(devConfig)) {
        const dev = readImports(devConfig);
        for (const [key, target] of Object.entries(readImports(join(workdir, set.importMap)))) {
          if (key in dev && dev[key] !== target) {
            problems.push(
              `${fn.name}: ${set.importMap} maps "${key}" to ${target}, deno.json (what the tests ` +
                `run) to ${dev[key]}: make them agree`,
            );
          }
        }
      }
      if (extra.length > 0) {
        problems.push(
          `${fn.name}: its import map ${set.importMap} also sets ${extra.join(", ")}: ` +
            `deploy with an import map made for deployment (imports only), ` +
            `e.g. supabase/functions/import_map.json`,
        );
      }
    }
    const dir = realpathSync(Deno.makeTempDirSync({ prefix: `tether-upload-${fn.name}-` }));
    try {
      for (const file of set.files) {
        mkdirSync(join(dir, dirname(file)), { recursive: true });
        cpSync(join(workdir, file), join(dir, file));
      }
      const entry = `supabase/functions/${fn.name}/index.ts`;
      const mapArgs = !set.importMap
        ? ["--no-config"]
        : isDenoConfig(set.importMap)
        ? [`--config=${set.importMap}`]
        : ["--no-config", `--import-map=${set.importMap}`];
      const out = await new Deno.Command(deno, {
        args: ["cache", "--quiet", ...mapArgs, entry],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        // Trust the operating system's certificate authorities as well as Deno's own (Mozilla's):
        // a machine that reaches the registry through a TLS-inspecting proxy trusts that proxy's
        // CA in its system store, which npm uses and Deno ignores by default.
        env: {
          NO_COLOR: "1",
          DENO_TLS_CA_STORE: Deno.env.get("DENO_TLS_CA_STORE") ?? "mozilla,system",
        },
      }).output();
      if (out.code !== 0) {
        const text = (new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout))
          .replaceAll(dir, "<upload>").replace(/\n*Stack backtrace:[\s\S]*$/, "").trim();
        problems.push(
          `${fn.name}: its uploaded files (${set.files.length}) do not load on their own (no node_modules, only what the CLI uploads):\n${text}`,
        );
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
  if (problems.length > 0) throw new CheckError(problems.join("\n"));
  return counts;
}
