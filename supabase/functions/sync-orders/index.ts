import { serveJob } from "../../../functions-shared/http/serve.ts";
import { syncOrders } from "../../../functions-shared/jobs/sync.ts";

serveJob(syncOrders);
