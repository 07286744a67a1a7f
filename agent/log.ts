// The agent's logger: one small interface, injected everywhere, so tests can record what was logged.

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug(msg: string): void;
}

export type LogSink = (line: string) => void;

/** A logger that writes timestamped lines (twistd-like) to a sink. */
export function createLogger(sink: LogSink, opts: { debug?: boolean } = {}): Logger {
  const write = (level: string, msg: string): void => {
    const ts = new Date().toISOString();
    for (const line of msg.split('\n')) sink(`${ts} [${level}] ${line}`);
  };
  return {
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
    debug: (m) => {
      if (opts.debug) write('debug', m);
    },
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
