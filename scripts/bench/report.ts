// The bench's figures: one object per case, printed as a table and merged into
// bench/results.json (a run of some cases keeps the others' last results).
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const ROOT = join(import.meta.dirname ?? ".", "..", "..");
export const RESULTS = join(ROOT, "bench", "results.json");

export interface CaseResult {
  case: string;
  [figure: string]: unknown;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** One line a case; figures that are objects (by_function) are in bench/results.json only. */
export function printTable(results: CaseResult[]): void {
  const keys = [
    ...new Set(
      results.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] !== "object")),
    ),
  ];
  const cells = [keys, ...results.map((r) => keys.map((k) => formatCell(k, r[k])))];
  const widths = keys.map((_, c) => Math.max(...cells.map((row) => String(row[c]).length)));
  const line = (row: unknown[]) =>
    row.map((v, c) => String(v).padEnd(widths[c]!)).join("  ").trimEnd();
  console.log(line(keys));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Counts as they are; times and rates with two decimals (1.00 provider calls per connection). */
function formatCell(key: string, value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "number" && (!Number.isInteger(value) || /_s$|_per_connection$/.test(key))) {
    return value.toFixed(2);
  }
  return String(value);
}

export async function writeResults(results: CaseResult[]): Promise<void> {
  let previous: CaseResult[] = [];
  if (existsSync(RESULTS)) {
    try {
      const parsed: unknown = JSON.parse(await readFile(RESULTS, "utf8"));
      if (Array.isArray(parsed)) previous = parsed as CaseResult[];
    } catch {
      previous = [];
    }
  }
  const fresh = new Set(results.map((r) => r.case));
  const merged = [...previous.filter((r) => !fresh.has(r.case)), ...results];
  await mkdir(join(ROOT, "bench"), { recursive: true });
  await writeFile(RESULTS, JSON.stringify(merged, null, 2) + "\n");
}
