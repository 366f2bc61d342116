import { serveJob } from "../../../functions-shared/http/serve.ts";
import { backfill } from "../../../functions-shared/jobs/backfill.ts";

serveJob(backfill);
