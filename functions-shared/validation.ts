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
