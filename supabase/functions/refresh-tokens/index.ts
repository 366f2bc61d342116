import { serveJob } from "../../../functions-shared/http/serve.ts";
import { refreshTokens } from "../../../functions-shared/jobs/refresh_tokens.ts";

serveJob(refreshTokens);
