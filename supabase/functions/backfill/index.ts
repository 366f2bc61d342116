import { serveJob } from "../../../functions-shared/platform.ts";
import { backfill } from "../../../functions-shared/jobs/backfill.ts";

serveJob(backfill);
