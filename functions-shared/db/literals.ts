// Values written into a statement's text, for the few statements every provider page sends: as a
// simple query a statement is one round trip, where postgres.js with prepared statements off
// (./client.ts) has Postgres describe a parameterized one before running it, two round trips, and
// on the Edge Runtime's Deno each costs the worker about 0.4 ms of CPU (`npm run bench -- sync`).
// Each helper checks or quotes its value so that nothing written in can end the literal.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID literal; anything else is refused. */
export function uuidLiteral(id: string): string {
  if (!UUID.test(id)) throw new TypeError("expected a UUID to write into a statement");
  return `'${id}'::uuid`;
}

/** A float8 literal, `null` when absent; NaN and infinities are refused. */
export function floatLiteral(x: number | null | undefined): string {
  if (x === null || x === undefined) return "null";
  if (!Number.isFinite(x)) throw new TypeError(`expected a finite number, not ${x}`);
  return `(${x})::float8`;
}

/**
 * Any text as a dollar-quoted literal (`$q$…$q$`) whose tag the text does not contain, so
 * nothing in it is read as SQL and nothing is escaped or copied: a page's JSON goes in as it is.
 */
export function textLiteral(text: string): string {
  let tag = "$q$";
  for (let n = 0; text.includes(tag); n++) tag = `$q${n}$`;
  return `${tag}${text}${tag}`;
}
