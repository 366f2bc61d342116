// The live terminal view of `npm start`: one line per connection (tether.connection_health and
// the record counts), redrawn in place every few seconds on a terminal, printed as a plain table
// every so often otherwise.
import { table } from "../cli/common.ts";
import { displayRow, type HealthRow } from "../cli/health.ts";

const enc = new TextEncoder();

export interface ViewState {
  header: string[];
  rows: HealthRow[];
  footer: string[];
}

/** Columns given up, first to last, when the table is wider than the terminal. */
const DROP_ORDER = [
  "token expires",
  "last refresh",
  "customers",
  "orders",
  "customers synced",
  "backfill",
  "orders synced",
];
/** The fewest characters of `last error` worth showing. */
const MIN_ERROR_CHARS = 30;

/**
 * The connections' table; with `width`, fitted to it: columns of least use are dropped (provider,
 * name, status and last error stay) and the last error is cut to what is left, so it is always
 * visible.
 */
export function renderTable(rows: HealthRow[], now = Date.now(), width?: number): string {
  const display = rows.map((r) => displayRow(r, now));
  if (width === undefined || display.length === 0) return table(display);
  const widthOf = (cols: string[]) =>
    cols.reduce((sum, c) => sum + Math.max(c.length, ...display.map((r) => r[c]!.length)), 0) +
    2 * (cols.length - 1);
  let cols = Object.keys(display[0]!);
  const withoutError = (cols: string[]) => widthOf(cols.filter((c) => c !== "last error"));
  for (const drop of DROP_ORDER) {
    if (widthOf(cols) <= width || withoutError(cols) + 2 + MIN_ERROR_CHARS <= width) break;
    cols = cols.filter((c) => c !== drop);
  }
  const room = Math.max(MIN_ERROR_CHARS, width - withoutError(cols) - 2);
  const cut = (text: string) => text.length > room ? `${text.slice(0, room - 1)}…` : text;
  return table(display.map((r) => ({ ...r, "last error": cut(r["last error"]!) })), cols);
}

export function render(state: ViewState, opts: { tty: boolean; columns?: number }): string {
  const width = opts.columns ?? 200;
  const body = [
    ...state.header,
    "",
    renderTable(state.rows, Date.now(), opts.tty ? width : undefined),
    "",
    ...state.footer,
  ];
  if (!opts.tty) return `${new Date().toISOString()}\n${body.join("\n")}\n`;
  const lines = body.flatMap((l) => l.split("\n")).map((l) =>
    l.length > width ? `${l.slice(0, width - 1)}…` : l
  );
  // Home, draw each line clearing its rest, then clear below.
  return `\x1b[H${lines.map((l) => `${l}\x1b[K`).join("\n")}\n\x1b[J`;
}

export function draw(state: ViewState): void {
  const tty = Deno.stdout.isTerminal();
  let columns: number | undefined;
  try {
    columns = tty ? Deno.consoleSize().columns : undefined;
  } catch {
    columns = undefined;
  }
  Deno.stdout.writeSync(enc.encode(render(state, { tty, columns })));
}

export function clearScreen(): void {
  if (Deno.stdout.isTerminal()) Deno.stdout.writeSync(enc.encode("\x1b[H\x1b[2J"));
}
