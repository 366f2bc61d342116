// The rooms of docs/architecture.md that types cannot express, checked on the source text: jobs
// speak no HTTP, read no wall clock, name no runtime and no provider in their logic; adapters know nothing
// of Postgres; the sandbox and the project never import each other.
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { PROVIDERS } from "../functions-shared/providers/types.ts";

const root = join(import.meta.dirname!, "..");

async function sources(dir: string): Promise<{ path: string; code: string }[]> {
  const found: { path: string; code: string }[] = [];
  for await (const entry of Deno.readDir(join(root, dir))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) {
      found.push({ path, code: stripComments(await Deno.readTextFile(join(root, path))) });
    }
  }
  return found;
}

/** Comments say what they like; the rules are about code. */
function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

function offenders(files: { path: string; code: string }[], pattern: RegExp): string[] {
  return files.filter((f) => pattern.test(f.code)).map((f) => relative(root, join(root, f.path)));
}

Deno.test("jobs mention no Request or Response, and read time only through deps", async () => {
  const jobs = await sources("functions-shared/jobs");
  assert.ok(jobs.length >= 5, "the jobs were found");
  assert.deepEqual(offenders(jobs, /\b(Request|Response)\b/), []);
  assert.deepEqual(offenders(jobs, /\bDate\.now\(|\bsetTimeout\(|\bperformance\.now\(/), []);
});

Deno.test("jobs name no runtime: work after the answer is handed to the HTTP frame's waitUntil", async () => {
  const jobs = await sources("functions-shared/jobs");
  assert.deepEqual(offenders(jobs, /\bEdgeRuntime\b|\bwaitUntil\b|\bDeno\./), []);
  const frame = await sources("functions-shared/http");
  assert.deepEqual(offenders(frame, /\bEdgeRuntime\b/), ["functions-shared/http/serve.ts"]);
});

Deno.test("jobs name no provider in their logic: dispatch goes through the registry", async () => {
  const jobs = await sources("functions-shared/jobs");
  const named = new RegExp(`["'\`/](${PROVIDERS.join("|")})["'\`/]`);
  assert.deepEqual(offenders(jobs, named), []);
});

Deno.test("jobs hold no SQL: statements live in functions-shared/db", async () => {
  const jobs = await sources("functions-shared/jobs");
  assert.deepEqual(offenders(jobs, /\b(db|tx|sql)`/), []);
});

Deno.test("adapters know nothing of Postgres", async () => {
  const providers = await sources("functions-shared/providers");
  assert.deepEqual(offenders(providers, /from "[^"]*\/db\/|from "postgres"/), []);
});

Deno.test("the sandbox imports no project code, and the project imports no sandbox or test", async () => {
  const sandbox = await sources("sandbox");
  assert.deepEqual(
    offenders(sandbox, /from "\.\.\/+(\.\.\/)*(functions-shared|scripts|tests)\//),
    [],
  );
  const project = [...await sources("functions-shared"), ...await sources("supabase/functions")];
  assert.deepEqual(offenders(project, /from "[^"]*\/(sandbox|tests)\//), []);
});

Deno.test("the client module imports nothing: a user's function copies or imports it alone", async () => {
  const client = await sources("client");
  assert.ok(client.length >= 2, "the client and its example were found");
  const outside = client.flatMap((file) =>
    [...file.code.matchAll(/from "([^"]+)"/g)]
      .map((m) => m[1]!)
      .filter((spec) =>
        !spec.startsWith(".") || !join(dirname(file.path), spec).startsWith("client/")
      )
      .map((spec) => `${file.path}: ${spec}`)
  );
  assert.deepEqual(outside, []);
});

Deno.test("the benchmarks run jobs only through served functions, under the Edge Runtime's limits", async () => {
  const bench = await sources("scripts/bench");
  assert.ok(bench.length >= 5, "the bench cases were found");
  // Types may be imported (a job's input and result, Deps); a job or the HTTP frame may not.
  const running = /import \{[^}]*\} from "[^"]*functions-shared\/(jobs|http)\//;
  assert.deepEqual(offenders(bench, running), []);
});
