// Structured logs: one JSON object per line on stderr, so any collector can ingest them. Each line
// names the node (and, under perch start --workers, the worker) that wrote it.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  enabled(level: LogLevel): boolean;
}

export function createLogger(level: LogLevel = 'info', base: Record<string, unknown> = {},
  sink: (line: string) => void = (line) => process.stderr.write(line + '\n')): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    // The logger's own fields (which node and worker write the line) are never overwritten: a call's
    // field of the same name, about another node, is written as peer_<name>.
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...base };
    if (fields) for (const k in fields) rec[k in base ? `peer_${k}` : k] = fields[k];
    for (const k in rec) if (rec[k] instanceof Error) rec[k] = (rec[k] as Error).message;
    sink(JSON.stringify(rec));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, sink),
    enabled: (lvl) => RANK[lvl] >= min,
  };
}
