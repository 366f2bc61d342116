import { serveJob } from "../../../functions-shared/http/serve.ts";
import { disconnect } from "../../../functions-shared/jobs/disconnect.ts";

serveJob(disconnect);
