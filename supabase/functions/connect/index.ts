import { serveJob } from "../../../functions-shared/platform.ts";
import { connect } from "../../../functions-shared/jobs/connect.ts";

serveJob(connect);
