// LOCAL STAND-IN for pg_net's background worker, never deployed.
// sql/local/pg_net.sql queues each request in net.http_request_queue and
// NOTIFYs; PostgreSQL delivers the NOTIFY only when the calling transaction
// commits, so a request from a rolled-back transaction is never seen. This
// worker takes queued requests (deleting them, as pg_net does), sends them
// with their timeout, and records every outcome in net._http_response:
// status, headers and body; or timed_out / error_msg as pg_net records them.
import postgres from "postgres";

export interface NetWorkerOptions {
  databaseUrl: string;
  /** Requests in flight at once (pg_net's batch size is similar). */
  concurrency?: number;
  /** Safety-net poll, in case a notification was missed. */
  pollMs?: number;
  log?: (line: string) => void;
}

export interface NetWorker {
  stop(): Promise<void>;
}

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

const CHANNEL = "net_http_request_queue";

export async function startNetWorker(opts: NetWorkerOptions): Promise<NetWorker> {
  const concurrency = opts.concurrency ?? 16;
  const log = opts.log ?? (() => {});
  const sql = postgres(opts.databaseUrl, { max: 2, onnotice: () => {} });
  let stopped = false;
  let wake: () => void = () => {};
  const inFlight = new Set<Promise<void>>();

  const listener = await sql.listen(CHANNEL, () => wake());

  async function claim(limit: number): Promise<QueuedRequest[]> {
    return await sql<QueuedRequest[]>`
      delete from net.http_request_queue
       where id in (select id from net.http_request_queue order by id
                    for update skip locked limit ${limit})
      returning id, method::text as method, url, headers, body, timeout_milliseconds`;
  }

  async function send(req: QueuedRequest): Promise<void> {
    const started = Date.now();
    let row: Record<string, unknown>;
    try {
      const res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body ? new Uint8Array(req.body) : undefined,
        signal: AbortSignal.timeout(req.timeout_milliseconds),
      });
      const content = await res.text();
      row = {
        status_code: res.status,
        content_type: res.headers.get("content-type"),
        headers: Object.fromEntries(res.headers),
        content,
        timed_out: false,
        error_msg: null,
      };
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === "TimeoutError";
      row = {
        status_code: null,
        content_type: null,
        headers: null,
        content: null,
        timed_out: timedOut,
        error_msg: timedOut
          ? `Timeout of ${req.timeout_milliseconds} ms reached`
          : `Couldn't connect to server: ${(err as Error).message}`,
      };
    }
    await sql`
      insert into net._http_response
        (id, status_code, content_type, headers, content, timed_out, error_msg)
      values (${req.id}, ${row.status_code as number | null}, ${row.content_type as string | null},
              ${row.headers ? sql.json(row.headers as postgres.JSONValue) : null},
              ${row.content as string | null}, ${row.timed_out as boolean},
              ${row.error_msg as string | null})`;
    const outcome = row.status_code ?? row.error_msg;
    log(`net: ${req.method} ${redactUrl(req.url)} -> ${outcome} (${Date.now() - started} ms)`);
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      const free = concurrency - inFlight.size;
      const batch = free > 0 ? await claim(free).catch(() => []) : [];
      for (const req of batch) {
        const p = send(req).catch((err) => log(`net: could not record response: ${err}`))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      if (batch.length === 0 || inFlight.size >= concurrency) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, opts.pollMs ?? 500);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          if (inFlight.size >= concurrency) {
            Promise.race(inFlight).then(() => wake());
          }
        });
      }
    }
  }

  const running = loop();
  return {
    async stop() {
      stopped = true;
      wake();
      await running;
      await Promise.allSettled(inFlight);
      await listener.unlisten();
      await sql.end({ timeout: 2 });
    },
  };
}

/** Query strings can carry keys; the log shows the path only. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}
