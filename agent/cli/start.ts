// `bbagent start`: validates the config, then either runs the agent in the foreground (--nodaemon) or re-runs
// itself detached and follows bbagent.log until the agent connected, as buildbot-worker's start + logwatcher do.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { isSingleExecutable } from '../../platforms/sea/index.js';
import { runAgent } from '../agent.js';
import { loadConfig, type ConfigOverrides } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { AgentError, errorMessage } from '../errors.js';
import { createLogger, parseLogLine } from '../log.js';
import { EXIT_FAILED, EXIT_OK, exitCodeFor, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { openRotatingLog, type RotatingLog } from './logfile.js';
import { FIELD_FLAGS, fieldArgv, fieldFlagsHelp, fieldOptionSpec, fieldOverrides } from './options.js';
import { PIDFILE, checkPidfile, claimPidfile, pidfilePath, releasePidfile } from './pidfile.js';

const COMMAND = 'bbagent start';

/** The settings a start may be given for one run: every flag of create-worker that sets a field. */
export const START_SETTINGS_HELP = `Settings for this run (over BASEDIR/bbagent.json and BBAGENT_* variables; the file is not changed):
${fieldFlagsHelp(FIELD_FLAGS, false)}`;

export const START_USAGE = `Usage: bbagent start [--nodaemon] [--quiet] [SETTINGS] [BASEDIR]

Starts the worker in BASEDIR (default: the current directory). Without --nodaemon it runs in the background
(pidfile BASEDIR/bbagent.pid, rotating log BASEDIR/bbagent.log), and this command waits up to 10 s for it to
connect to the master.

Options:
      --nodaemon              stay in the foreground, logging to stdout and bbagent.log
      --master HOST:PORT      a master to attach to, once per master in order of preference (replaces the config's)
  -q, --quiet                 print nothing but errors
  -h, --help                  show this help

${START_SETTINGS_HELP}`;

export const START_OPTIONS: OptionSpec = {
  nodaemon: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
  master: { type: 'string', multiple: true },
  ...fieldOptionSpec(FIELD_FLAGS),
};

export const LOG_FILE = 'bbagent.log';

/** How long `start` follows the log for a connection: buildbot-worker's LogWatcher.TIMEOUT_DELAY. */
export const START_WAIT_MS = 10_000;
/** How often the log is read while following it (LogWatcher.POLL_INTERVAL). */
const START_POLL_MS = 100;
/** The runtime's log line once the master accepted the worker (ConnectionManager: "Connected to ..."). */
const CONNECTED_LINE = /\bConnected to /;
/** The runtime's log line when it tries to connect: the agent started and read its config. */
const CONNECTING_LINE = /\bConnecting to /;

export interface StartOptions {
  nodaemon: boolean;
  quiet: boolean;
  /** The parsed command line: its setting flags override the config for this run. */
  values?: Readonly<Record<string, unknown>>;
}

/** The settings flags of a start's command line as config overrides (loadConfig names each by its flag). */
export function startOverrides(values: Readonly<Record<string, unknown>>): ConfigOverrides {
  const masters = startMasters(values);
  return { ...fieldOverrides(FIELD_FLAGS, values).overrides, ...(masters.length ? { masters: masters.join('\n') } : {}) };
}

/** The --master flags of a start, in order. */
function startMasters(values: Readonly<Record<string, unknown>>): string[] {
  return (values['master'] as string[] | undefined) ?? [];
}

export function logfilePath(basedir: string): string {
  return path.join(path.resolve(basedir), LOG_FILE);
}

export async function startCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, START_OPTIONS, 1);
    if (values['help']) {
      io.out(START_USAGE);
      return EXIT_OK;
    }
    return startWorker(positionals[0] ?? '.', { nodaemon: values['nodaemon'] === true, quiet: values['quiet'] === true, values }, io);
  });
}

/** Starts the worker in `basedir`; resolves with the exit code (for --nodaemon, once the agent stopped). */
export async function startWorker(basedir: string, opts: StartOptions, io: CliIO): Promise<number> {
  const dir = path.resolve(basedir);
  // A bad or half-written config is refused here, before a pidfile, a log or a process exists.
  const config = loadConfig(dir, startOverrides(opts.values ?? {}), io.env);
  return opts.nodaemon ? runForeground(config, dir, io) : daemonize(dir, opts.quiet, startArgv(opts.values ?? {}), io);
}

async function runForeground(config: AgentConfig, dir: string, io: CliIO): Promise<number> {
  const pidfile = pidfilePath(dir);
  claimPidfile(pidfile);
  // Also on process.exit() and uncaught exceptions; a SIGKILL leaves a stale pidfile that the next start removes.
  const release = (): void => releasePidfile(pidfile);
  process.on('exit', release);
  try {
    let log: RotatingLog;
    try {
      log = openRotatingLog(logfilePath(dir), config.logSize, config.logCount);
    } catch (err) {
      throw new AgentError('E_LOG', `${COMMAND}: cannot open ${logfilePath(dir)}: ${errorMessage(err)}`);
    }
    const logger = createLogger(
      (line) => {
        log.write(line);
        io.out(line);
      },
      { level: config.logLevel, format: config.logFormat },
    );
    try {
      return await runAgent(config, { logger });
    } catch (err) {
      logger.error(`bbagent could not run: ${errorMessage(err)}`);
      return exitCodeFor(err);
    } finally {
      log.close();
    }
  } finally {
    process.off('exit', release);
    release();
  }
}

/**
 * How to run this same program again: `node [execArgv] script` normally, the executable alone when bbagent is a
 * single executable (Node SEA: argv[1] repeats the executable; other packers: argv[1] is missing or not on disk).
 */
export function selfCommand(proc: Pick<NodeJS.Process, 'execPath' | 'argv' | 'execArgv'> = process): { command: string; args: string[] } {
  const script = proc.argv[1];
  if (isSingleExecutable() || script === undefined || path.resolve(script) === path.resolve(proc.execPath) || !existsSync(script)) {
    return { command: proc.execPath, args: [] };
  }
  return { command: proc.execPath, args: [...proc.execArgv, script] };
}

type StartupOutcome =
  | { kind: 'connected'; line: string }
  | { kind: 'exited'; code: number | null; signal: string | null; lines: string[] }
  | { kind: 'spawn-error'; message: string }
  | { kind: 'timeout'; connecting: boolean };

/** The setting flags of a start as argv again, for the agent it starts in the background. */
function startArgv(values: Readonly<Record<string, unknown>>): string[] {
  return [...fieldArgv(FIELD_FLAGS, values), ...startMasters(values).map((m) => `--master=${m}`)];
}

/** Runs `start --nodaemon` detached with the same setting flags (`settings`), and follows its log. */
async function daemonize(dir: string, quiet: boolean, settings: string[], io: CliIO): Promise<number> {
  const say = (line: string): void => {
    if (!quiet) io.out(line);
  };
  const pidfile = pidfilePath(dir);
  const { removedStale } = checkPidfile(pidfile);
  if (removedStale !== null) say(`removed stale ${PIDFILE} (process ${removedStale} is not running)`);

  const logPath = logfilePath(dir);
  const fd = openSync(logPath, 'a');
  const offset = fstatSync(fd).size;
  const self = selfCommand();
  let child: ChildProcess;
  try {
    // The child writes bbagent.log itself; its stderr goes there too so a crash is on record. Its stdout (the
    // foreground logger's echo) is dropped so lines are not written twice. detached: its own session, so it
    // outlives this process and the terminal.
    child = spawn(self.command, [...self.args, 'start', '--nodaemon', ...settings, dir], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', 'ignore', fd],
      env: io.env,
      windowsHide: true,
    });
  } finally {
    closeSync(fd);
  }
  const outcome = await followStartup(child, logPath, offset, START_WAIT_MS);
  child.unref();
  const pid = child.pid ?? '?';
  switch (outcome.kind) {
    case 'connected':
      say(`bbagent started in ${dir} (pid ${pid}): ${parseLogLine(outcome.line).msg}`);
      return EXIT_OK;
    case 'timeout':
      say(
        `bbagent started in ${dir} (pid ${pid}) but has not connected to the master within ${START_WAIT_MS / 1000} s` +
          `${outcome.connecting ? ' (still trying)' : ''}; see ${logPath}`,
      );
      return EXIT_OK;
    case 'spawn-error':
      io.err(`${COMMAND}: could not run ${self.command}: ${outcome.message}`);
      return EXIT_FAILED;
    case 'exited': {
      const how = outcome.code !== null ? `exit code ${outcome.code}` : `signal ${outcome.signal ?? '?'}`;
      const reason = lastReason(outcome.lines);
      io.err(`bbagent failed to start in ${dir} (${how})${reason ? `: ${reason}` : ''}; see ${logPath}`);
      return outcome.code !== null && outcome.code !== 0 ? outcome.code : EXIT_FAILED;
    }
  }
}

/** The line that best explains a failed start: the last error logged, else the last line written. */
function lastReason(lines: string[]): string | undefined {
  const nonEmpty = lines.filter((l) => l.trim() !== '');
  const line = [...nonEmpty].reverse().find((l) => parseLogLine(l).level === 'error') ?? nonEmpty[nonEmpty.length - 1];
  return line === undefined ? undefined : parseLogLine(line).msg;
}

/** Follows `logPath` from `offset` until the child connected, exited, or `timeoutMs` passed. */
function followStartup(child: ChildProcess, logPath: string, offset: number, timeoutMs: number): Promise<StartupOutcome> {
  return new Promise((resolve) => {
    let position = offset;
    let partial = '';
    const lines: string[] = [];
    let connecting = false;
    let done = false;

    const readNew = (): void => {
      let fd: number | undefined;
      try {
        fd = openSync(logPath, 'r');
        const size = fstatSync(fd).size;
        if (size < position) position = 0; // rotated under us: the new file starts afresh
        const buf = Buffer.alloc(Math.min(size - position, 1 << 20));
        const n = buf.length > 0 ? readSync(fd, buf, 0, buf.length, position) : 0;
        position += n;
        const text = partial + buf.subarray(0, n).toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          lines.push(line.replace(/\r$/, ''));
          if (CONNECTING_LINE.test(line)) connecting = true;
          if (CONNECTED_LINE.test(line)) finish({ kind: 'connected', line });
        }
      } catch {
        // the log may be mid-rotation; the next poll reads it
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    };

    const finish = (outcome: StartupOutcome): void => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(outcome);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      readNew();
      if (partial !== '') lines.push(partial);
      finish({ kind: 'exited', code, signal, lines });
    };
    const onError = (err: Error): void => finish({ kind: 'spawn-error', message: err.message });

    child.on('exit', onExit);
    child.on('error', onError);
    const poll = setInterval(readNew, START_POLL_MS);
    const timer = setTimeout(() => {
      readNew();
      finish({ kind: 'timeout', connecting });
    }, timeoutMs);
  });
}
