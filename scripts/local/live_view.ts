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

export function renderTable(rows: HealthRow[], now = Date.now()): string {
  return table(rows.map((r) => displayRow(r, now)));
}

export function render(state: ViewState, opts: { tty: boolean; columns?: number }): string {
  const body = [
    ...state.header,
    "",
    renderTable(state.rows),
    "",
    ...state.footer,
  ];
  if (!opts.tty) return `${new Date().toISOString()}\n${body.join("\n")}\n`;
  const width = opts.columns ?? 200;
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
