import { createConnectHandler } from "../../../functions-shared/jobs/oauth.ts";
import { serveFunction } from "../../../functions-shared/platform.ts";

serveFunction("connect", createConnectHandler);
