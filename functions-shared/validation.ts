// One way to say what failed validation, wherever zod runs: a provider's
// response (providers/http.ts), a request body (http/serve.ts), or a nested part
// of one (connect's credentials and config). Messages name the field by path.
import type { z } from "zod";

/** `a.b[0].c` for a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/**
 * `field "access_token": expected string, received undefined; field "expires_in": …`.
 * `prefix` names where the validated value sits (`credentials` → `field "credentials.api_token"`).
 */
export function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  opts: { prefix?: string; max?: number } = {},
): string {
  const max = opts.max ?? 3;
  const parts = issues.slice(0, max).map((issue) => {
    const path = opts.prefix === undefined ? issue.path : [opts.prefix, ...issue.path];
    const message = issue.message.replace(/^Invalid input: /, "");
    return path.length === 0 ? message : `field "${formatPath(path)}": ${message}`;
  });
  if (issues.length > max) parts.push(`and ${issues.length - max} more`);
  return parts.join("; ");
}

/**
 * JSON.parse that never throws: `undefined` for text that is not JSON (no JSON text parses to
 * undefined). A syntax error's message quotes the input, which may hold a secret, so it is never
 * passed on.
 */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const MAX_CHECKED_DEPTH = 32;

/** C0 control characters and DEL: never part of a name, an id, a token or a URL. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** True when `text` holds a control character (U+0000–U+001F, U+007F). */
export function hasControlCharacter(text: string): boolean {
  return CONTROL.test(text);
}

/** A zod refinement message for text that must hold no control character. */
export const NO_CONTROL_CHARACTERS = "must not contain control characters";

/**
 * The path of the first string (or object key) in a parsed JSON value holding U+0000, which
 * Postgres text and jsonb cannot store; undefined when there is none. Request bodies are checked
 * with this before their schema, so a NUL anywhere is a 400 naming the field, never a database
 * error. Values nested deeper than `MAX_CHECKED_DEPTH` are left to the schema (no schema of ours
 * accepts them), so a 100,000-deep body cannot exhaust the stack.
 */
export function findNulCharacter(
  value: unknown,
  path: readonly PropertyKey[] = [],
): string | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? formatPath(path) : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  if (path.length >= MAX_CHECKED_DEPTH) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const at = [...path, Array.isArray(value) ? Number(key) : key];
    if (key.includes("\u0000")) return formatPath(at).replaceAll("\u0000", "\\u0000");
    const found = findNulCharacter(item, at);
    if (found !== undefined) return found;
  }
  return undefined;
}
