import { serveJob } from "../../../functions-shared/http/serve.ts";
import { tokens } from "../../../functions-shared/jobs/access.ts";

serveJob(tokens);
