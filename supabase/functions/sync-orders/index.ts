import { serveJob } from "../../../functions-shared/platform.ts";
import { syncOrders } from "../../../functions-shared/jobs/sync.ts";

serveJob(syncOrders);
