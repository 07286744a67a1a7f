// The agent's logger: one small interface, injected everywhere, so tests can record what was logged.

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug(msg: string): void;
}

export type LogSink = (line: string) => void;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const SEVERITY: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A logger that writes timestamped lines (twistd-like) to a sink, those at `level` or more severe (default
 * info; `debug: true` is level debug).
 */
export function createLogger(sink: LogSink, opts: { debug?: boolean; level?: LogLevel } = {}): Logger {
  const least = SEVERITY[opts.level ?? (opts.debug ? 'debug' : 'info')];
  const write = (level: LogLevel, msg: string): void => {
    if (SEVERITY[level] < least) return;
    const ts = new Date().toISOString();
    for (const line of msg.split('\n')) sink(`${ts} [${level}] ${line}`);
  };
  return {
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
    debug: (m) => write('debug', m),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
