import { serveJob } from "../../../functions-shared/platform.ts";
import { syncCustomers } from "../../../functions-shared/jobs/sync.ts";

serveJob(syncCustomers);
