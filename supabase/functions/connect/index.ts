import { serveFunction } from "../../../functions-shared/http/serve.ts";
import { createConnectHandler } from "../../../functions-shared/http/connect.ts";

serveFunction("connect", createConnectHandler);
