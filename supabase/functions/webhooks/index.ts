import { jsonError } from "../../../functions-shared/platform.ts";

// Fails closed until signature verification is built (issue #6): nothing is
// stored, and providers retry the delivery later.
Deno.serve(() =>
  jsonError(501, "not_implemented", "webhooks are not verified yet (issue #6); nothing was stored")
);
