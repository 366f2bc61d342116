import { serveJob } from "../../../functions-shared/platform.ts";
import { notYetBuilt } from "../../../functions-shared/jobs/not_yet.ts";

serveJob(notYetBuilt("sync-orders", 4));
