// Structured log lines (one JSON object per line, as Supabase's log explorer
// shows them). Values under secret-looking keys are replaced before printing,
// a second line of defence: code never passes secrets here on purpose.
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const SECRET_KEY = /token|secret|password|authorization|apikey|api_key|credential/i;

export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = SECRET_KEY.test(key) ? "[redacted]" : value;
  }
  return out;
}

export function createLogger(
  scope: string,
  write: (line: string) => void = (line) => console.log(line),
): Logger {
  const emit = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
    write(JSON.stringify({ level, scope, msg, ...redact(fields) }));
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}
