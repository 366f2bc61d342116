import { serveJob } from "../../../functions-shared/http/serve.ts";
import { syncCustomers } from "../../../functions-shared/jobs/sync.ts";

serveJob(syncCustomers);
