// iso(): a provider timestamp as ISO 8601 UTC. Text already in that form is rewritten without a
// Date (a sync page converts two per record); the result must be what Date's own round trip
// gives, for every shape of input, and an impossible date must still be refused or rolled over as
// Date.parse does.
import assert from "node:assert/strict";
import { iso, isoOrNull } from "../functions-shared/providers/common.ts";

const viaDate = (text: string) => new Date(Date.parse(text)).toISOString();

Deno.test("iso() gives what Date's round trip gives, whatever the input's shape", () => {
  const inputs = [
    "2026-03-14T12:34:56Z",
    "2026-03-14T12:34:56.789Z",
    "2026-03-14T12:34:56.7Z",
    "2026-03-14T12:34:56.123456Z",
    "2026-03-14T12:34:56+02:00",
    "2026-03-14T12:34:56.5-05:30",
    "2026-03-14",
    "2024-02-29T00:00:00Z", // a leap day
    "2000-02-29T23:59:59Z", // divisible by 400: a leap year
    "2026-02-29T00:00:00Z", // no such day: Date.parse rolls it over into March
    "1900-02-29T00:00:00Z", // divisible by 100 only: no leap day
    "2026-04-31T10:00:00Z",
    "2026-12-31T23:59:59.999Z",
    "2026-01-01T24:00:00Z", // 24:00 is the next day's midnight
    "0001-01-01T00:00:00Z",
  ];
  for (const text of inputs) assert.equal(iso(text), viaDate(text), text);
});

Deno.test("iso() refuses text that is not a timestamp, naming it", () => {
  for (const text of ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T23:59:60Z"]) {
    assert.throws(() => iso(text), { message: `not a timestamp: ${text}` });
  }
  assert.equal(isoOrNull(null), null);
  assert.equal(isoOrNull("2026-03-14T12:34:56Z"), "2026-03-14T12:34:56.000Z");
});
