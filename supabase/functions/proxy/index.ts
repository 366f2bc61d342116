import { serveFunction } from "../../../functions-shared/http/serve.ts";
import { createProxyHandler } from "../../../functions-shared/http/proxy.ts";

serveFunction("proxy", createProxyHandler);
