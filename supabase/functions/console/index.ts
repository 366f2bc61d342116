import { serveFunction } from "../../../functions-shared/http/serve.ts";
import {
  consoleSettings,
  createConsoleHandler,
  loadStaticFiles,
} from "../../../functions-shared/http/console.ts";

serveFunction("console", (deps) =>
  createConsoleHandler(
    deps,
    consoleSettings((name) => Deno.env.get(name)),
    loadStaticFiles(new URL("./static/", import.meta.url)),
  ));
