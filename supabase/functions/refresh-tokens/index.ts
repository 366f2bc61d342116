import { serveJob } from "../../../functions-shared/platform.ts";
import { refreshTokens } from "../../../functions-shared/jobs/refresh_tokens.ts";

serveJob(refreshTokens);
