/** Small request/response helpers shared by the providers and the control API. */

export function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** Lower-cased media type without parameters ("" when absent). */
export function mediaType(req: Request): string {
  return (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

export const FORM = "application/x-www-form-urlencoded";

/** Form body, or undefined when the request is not form-encoded. */
export async function readForm(req: Request): Promise<URLSearchParams | undefined> {
  if (mediaType(req) !== FORM) return undefined;
  return new URLSearchParams(await req.text());
}

/** JSON object body, or undefined when the request is not JSON or not an object. */
export async function readJsonObject(req: Request): Promise<Record<string, unknown> | undefined> {
  if (mediaType(req) !== "application/json") return undefined;
  try {
    const body: unknown = JSON.parse(await req.text());
    return body !== null && typeof body === "object" && !Array.isArray(body)
      ? body as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/** Flattens a JSON object's string fields (other types are dropped). */
export function stringFields(body: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out.set(k, v);
  return out;
}

/** The credential after `Authorization: <scheme> `, scheme compared case-insensitively. */
export function authorization(req: Request, scheme: string): string | undefined {
  const header = req.headers.get("authorization");
  if (!header) return undefined;
  const space = header.indexOf(" ");
  if (space < 0 || header.slice(0, space).toLowerCase() !== scheme.toLowerCase()) return undefined;
  const value = header.slice(space + 1).trim();
  return value === "" ? undefined : value;
}

export function bearerToken(req: Request): string | undefined {
  return authorization(req, "Bearer");
}

/** `Authorization: Basic base64(id:secret)`, decoded. */
export function basicCredentials(req: Request): { id: string; secret: string } | undefined {
  const encoded = authorization(req, "Basic");
  if (!encoded) return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/** Resolves after `ms`, or early (never rejecting) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
