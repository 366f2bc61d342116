// The Postgres connection of a function or a test. postgres.js speaks to
// Supabase's pooler in transaction mode, so prepared statements are off.
import postgres from "postgres";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export function connect(url: string, opts: { max?: number; name?: string } = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 5,
    prepare: false,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: opts.name ?? "tether" },
  });
}
