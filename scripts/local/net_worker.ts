// LOCAL STAND-IN for pg_net's background worker, never deployed. It works the way the real one
// does (supabase/pg_net v0.20.4, src/worker.c and src/core.c), so that a test sees what production
// does:
// - sql/local/pg_net.sql queues each request and NOTIFYs, which PostgreSQL delivers only when the
//   calling transaction commits (pg_net wakes its worker from a commit callback): nothing is sent
//   for a transaction that rolls back.
// - One batch at a time, in one transaction: delete up to `batchSize` responses older than `ttl`,
//   take up to `batchSize` requests off the queue (oldest first), send them all at once, record
//   each outcome in net._http_response as it arrives, and commit only when the whole batch is
//   done. So a fast request waits for the slow ones of its batch, a request queued meanwhile waits
//   for the next batch, and the responses of a batch become visible together.
// - A worker that dies mid-batch rolls its transaction back: the batch's requests are back in the
//   queue and are sent again by the next worker (at least once), as with pg_net.
// - Between batches it waits up to a second (pg_net's WORKER_WAIT_ONE_SECOND), or until woken.
import postgres from "postgres";

export interface NetWorkerOptions {
  databaseUrl: string;
  /** Requests per batch: pg_net.batch_size, 200 by default. */
  batchSize?: number;
  /** How long responses are kept: pg_net.ttl, '6 hours' by default. */
  ttl?: string;
  /** The wait between batches while there is work: pg_net waits up to one second. */
  pauseMs?: number;
  /** Safety-net poll while idle, in case a notification was missed. */
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
  headers: Record<string, string> | null;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

interface ResponseRow {
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

const CHANNEL = "net_http_request_queue";

export async function startNetWorker(opts: NetWorkerOptions): Promise<NetWorker> {
  const batchSize = opts.batchSize ?? 200;
  const ttl = opts.ttl ?? "6 hours";
  const log = opts.log ?? (() => {});
  const sql = postgres(opts.databaseUrl, { max: 2, onnotice: () => {} });
  let stopped = false;
  let wake: () => void = () => {};
  let woken = false;
  const listener = await sql.listen(CHANNEL, () => {
    woken = true;
    wake();
  });

  /** One batch in one transaction; the number of requests and expired responses it handled. */
  async function batch(): Promise<number> {
    return await sql.begin(async (tx) => {
      const expired = await tx`
        delete from net._http_response r
         using (select ctid from net._http_response where created < now() - ${ttl}::interval
                 order by created limit ${batchSize}) old
         where r.ctid = old.ctid`;
      const requests = await tx<QueuedRequest[]>`
        delete from net.http_request_queue q
         using (select id from net.http_request_queue order by id limit ${batchSize}) next
         where q.id = next.id
        returning q.id, q.method::text as method, q.url, q.headers, q.body,
                  q.timeout_milliseconds`;
      await Promise.all(requests.map(async (req) => {
        const started = Date.now();
        const row = await send(req);
        await tx`
          insert into net._http_response
            (id, status_code, content_type, headers, content, timed_out, error_msg)
          values (${req.id}, ${row.status_code}, ${row.content_type},
                  ${row.headers ? tx.json(row.headers) : null}, ${row.content},
                  ${row.timed_out}, ${row.error_msg})`;
        const outcome = row.status_code ?? row.error_msg;
        log(`net: ${req.method} ${redactUrl(req.url)} -> ${outcome} (${Date.now() - started} ms)`);
      }));
      return requests.length + expired.count;
    });
  }

  /** Waits up to `ms`, or until a NOTIFY arrives (or arrived since the last wait). */
  function pause(ms: number): Promise<void> {
    if (woken || stopped) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        woken = false;
        wake = () => {};
        resolve();
      }
      wake = done;
    });
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      let handled = 0;
      try {
        handled = await batch();
      } catch (err) {
        if (!stopped) log(`net: batch failed, its requests stay queued: ${err}`);
      }
      await pause(handled > 0 ? opts.pauseMs ?? 1000 : opts.pollMs ?? 500);
    }
  }

  const running = loop();
  return {
    async stop() {
      stopped = true;
      wake();
      await running;
      await listener.unlisten();
      await sql.end({ timeout: 2 });
    },
  };
}

async function send(req: QueuedRequest): Promise<ResponseRow> {
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers ?? {},
      body: req.body ? new Uint8Array(req.body) : undefined,
      signal: AbortSignal.timeout(req.timeout_milliseconds),
    });
    const content = await res.text();
    return {
      status_code: res.status,
      content_type: res.headers.get("content-type"),
      headers: Object.fromEntries(res.headers),
      // pg_net records an empty body as NULL.
      content: content === "" ? null : content,
      timed_out: false,
      error_msg: null,
    };
  } catch (err) {
    const timedOut = err instanceof DOMException && err.name === "TimeoutError";
    return {
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
