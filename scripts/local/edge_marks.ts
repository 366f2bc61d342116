// The lines a local edge worker (./edge_worker.ts) writes on stdout so the gateway (./functions.ts)
// can charge CPU time to the invocation that spends it: a request's handler has returned, a
// background task it handed over (EdgeRuntime.waitUntil) starts or ends; and, before the marks
// that can leave it idle, how much memory it holds as the Edge Runtime counts it. Each names the invocation by the id the gateway sent in
// INVOCATION_HEADER. One module for both, as the gateway must not import the worker (importing it
// would start one). Lines on one pipe arrive in order, so a task's start is always read before
// the handler's return that follows it.

/** The header the gateway names each invocation with; the worker reads it, the function may ignore it. */
export const INVOCATION_HEADER = "x-tether-edge-invocation";

export type EdgeMarkKind = "handled" | "task+" | "task-" | "memory";
const KINDS: readonly string[] = ["handled", "task+", "task-", "memory"];

const PREFIX = "\u001eedge:";

export interface EdgeMark {
  kind: EdgeMarkKind;
  /** The invocation id ("" for work begun outside a request); for "memory", the bytes held. */
  subject: string;
}

export function markLine(kind: EdgeMarkKind, subject: string): string {
  return `${PREFIX}${kind} ${subject}`;
}

/** The mark a line carries, or undefined for the function's own output. */
export function parseMark(line: string): EdgeMark | undefined {
  if (!line.startsWith(PREFIX)) return undefined;
  const [kind = "", subject = ""] = line.slice(PREFIX.length).split(" ", 2);
  return KINDS.includes(kind) ? { kind: kind as EdgeMarkKind, subject } : undefined;
}
