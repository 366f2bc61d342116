// Functions whose jobs are not built yet answer 501 after authenticating the
// caller, so the deploy, the routing and the SQL API can be exercised now and
// nobody mistakes them for working. Each names the issue that builds it.
import { z } from "zod";
import { type Job, JobError } from "../platform.ts";

export function notYetBuilt(name: string, issue: number): Job<unknown, never> {
  return {
    name,
    input: z.unknown(),
    run() {
      return Promise.reject(
        new JobError(501, "not_implemented", `${name} is not built yet (issue #${issue})`),
      );
    },
  };
}
