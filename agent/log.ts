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

/** How lines are written: `text` is "<ISO time> [level] message" per line; `json` one object per message. */
export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  /** Same as level 'debug'. */
  debug?: boolean;
  level?: LogLevel;
  format?: LogFormat;
  /** Wall clock (tests pin it). */
  now?: () => Date;
}

/**
 * A logger that writes timestamped lines (twistd-like) to a sink, those at `level` or more severe (default
 * info; `debug: true` is level debug). In json format each message is one line {"time","level","msg"}: a
 * multi-line message stays one object (its newlines escaped), so a log shipper never splits it.
 */
export function createLogger(sink: LogSink, opts: LoggerOptions = {}): Logger {
  const least = SEVERITY[opts.level ?? (opts.debug ? 'debug' : 'info')];
  const now = opts.now ?? (() => new Date());
  const json = opts.format === 'json';
  const write = (level: LogLevel, msg: string): void => {
    if (SEVERITY[level] < least) return;
    const ts = now().toISOString();
    if (json) sink(JSON.stringify({ time: ts, level, msg }));
    else for (const line of msg.split('\n')) sink(`${ts} [${level}] ${line}`);
  };
  return {
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
    debug: (m) => write('debug', m),
  };
}

const TEXT_PREFIX = /^\S+ \[(\w+)\] /;

/** A line of either format as its level and message (the level is undefined for a line of neither). */
export function parseLogLine(line: string): { level: string | undefined; msg: string } {
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as unknown;
      if (typeof o === 'object' && o !== null && typeof (o as { msg?: unknown }).msg === 'string') {
        const { level, msg } = o as { level?: unknown; msg: string };
        return { level: typeof level === 'string' ? level : undefined, msg };
      }
    } catch {
      // not ours: taken as text
    }
  }
  const m = TEXT_PREFIX.exec(line);
  return m ? { level: m[1], msg: line.slice(m[0].length) } : { level: undefined, msg: line };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
