import { serveConnect } from "../../../functions-shared/jobs/oauth.ts";

serveConnect();
