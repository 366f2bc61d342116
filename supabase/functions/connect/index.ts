import { serveFunction } from "../../../functions-shared/http/serve.ts";
import { createConnectHandler } from "../../../functions-shared/jobs/oauth.ts";

serveFunction("connect", createConnectHandler);
