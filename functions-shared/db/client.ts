// The Postgres connection of a function or a test. Functions connect to SUPABASE_DB_URL (the
// direct connection) or to TETHER_DB_URL, typically Supabase's pooler (Supavisor) in transaction
// mode, which does not keep prepared statements across transactions: so they are off, and
// nothing here relies on session state (no LISTEN, session SET or advisory locks; leases are rows).
import postgres from "postgres";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export function connect(url: string, opts: { max?: number; name?: string } = {}): Sql {
  guardClosedSocketWrites();
  return postgres(url, {
    max: opts.max ?? 5,
    prepare: false,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: opts.name ?? "tether" },
  });
}

let guarded = false;

/**
 * postgres.js 3.4 flushes buffered writes from a setImmediate that can fire after the server cut
 * the connection (a restart, pg_terminate_backend), on a socket it has already set to null. Under
 * Deno that TypeError is uncaught and would end the whole process, while the query it belonged to
 * has already been rejected with CONNECTION_CLOSED and the pool reconnects by itself. This keeps
 * the process alive for exactly that error and nothing else.
 */
function guardClosedSocketWrites(): void {
  if (guarded || typeof globalThis.addEventListener !== "function") return;
  guarded = true;
  globalThis.addEventListener("error", (event) => {
    const error = event.error;
    if (
      error instanceof TypeError && /reading 'write'/.test(error.message) &&
      /postgres\/src\/connection\.js/.test(error.stack ?? "")
    ) {
      event.preventDefault();
      console.warn("postgres.js: dropped a write to a connection the server had closed");
    }
  });
}
