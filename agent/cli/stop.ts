// `bbagent stop`: signals the process named in <basedir>/bbagent.pid with SIGTERM and waits for it to exit,
// as buildbot-worker's stop does with twistd.pid. It needs no valid config, so a broken one can still be stopped.
// Exit codes and messages as buildbot-worker's: a worker that is not running (no pidfile, or a stale one) is
// said so on stdout with exit 0, so `stop; start` works under `set -e`; a directory that is no worker
// directory, and a process that does not go away, exit 1.
// Under a service manager the stop is for good: the agent's drain ends in exit 0, which systemd's
// Restart=on-failure and launchd's SuccessfulExit=false do not restart (no root, no systemctl needed); on Windows,
// where no signal drains the agent, the service is stopped through the Service Control Manager.
// `stop --drain` (stop-drain.ts) asks over the control socket instead of signalling: the same on every OS, and
// the Windows service's stop program.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  currentPlatform,
  currentServiceManager,
  DEFAULT_STOP_TIMEOUT_S,
  MAX_STOP_TIMEOUT_S,
  ServiceError,
  type ServiceManager,
} from '../../platforms/index.js';
import type { ProcessControl } from '../../platforms/types.js';
import { configPath } from '../config/load.js';
import { AgentError } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, parseCommandLine, reportErrors, UsageError, type CliIO, type OptionSpec } from './io.js';
import { SOCKET_RETRY_MS, basedirOfServiceArgs, drainWorker, serviceNote, type DrainResult } from './stop-drain.js';
import { PIDFILE, isProcessAlive, pidfilePath, pidfileProcessAlive, readPidfile, releasePidfile, removePidfile } from './pidfile.js';

const COMMAND = 'bbagent stop';

export const STOP_USAGE = `Usage: bbagent stop [--quiet] [BASEDIR]
       bbagent stop --drain [--timeout SECONDS] [--quiet] [BASEDIR]

Stops the worker running in BASEDIR (default: the current directory): sends it SIGTERM and waits up to 10 s.
The agent first lets running commands finish; run stop again to interrupt them. As buildbot-worker's stop,
it exits 0 when the worker is not running (no bbagent.pid, or one naming a dead process), and 1 when BASEDIR
is not a worker directory or the process has not exited within the 10 s.
A worker run by 'bbagent service' stays stopped (its clean exit is not restarted) until 'bbagent service
start' or the next boot; on Windows stop asks the service manager (an elevated prompt), whose stop drains.

--drain asks the agent over its control socket instead (no signal, the same on every OS): running commands
finish, then it exits 0; after --timeout they are interrupted. It waits for the agent to exit (up to the
timeout and 25 s more) and exits 1 if it has not; a second drain while one is under way only waits.

Options:
      --drain              drain over the control socket and wait for the agent to exit
      --timeout SECONDS    with --drain: how long running commands may take (default ${DEFAULT_STOP_TIMEOUT_S})
      --service            with --drain: be the Windows service's stop program (docs/install.md): write to
                           BASEDIR/bbagent.log, end the agent's process tree if it cannot be drained; the
                           words after '--' are the service's own arguments (WinSW appends them)
  -q, --quiet              print nothing but errors
  -h, --help               show this help`;

const OPTIONS: OptionSpec = {
  drain: { type: 'boolean' },
  timeout: { type: 'string' },
  service: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** How long stop waits for the process to go away (buildbot-worker: 10 polls, 1 s apart). */
export const STOP_WAIT_MS = 10_000;
const STOP_POLL_MS = 100;

export type StopResult = { kind: 'stopped'; pid: number } | { kind: 'not-running'; reason: string } | { kind: 'timeout'; pid: number };

/**
 * Stops the agent in `basedir`; prints nothing (callers word the result for their context). The signal goes
 * through the platform: on Windows, which has no SIGTERM, it ends the agent at once.
 */
export async function stopWorker(
  basedir: string,
  waitMs: number = STOP_WAIT_MS,
  platform: Pick<ProcessControl, 'signalProcess'> = currentPlatform(),
): Promise<StopResult> {
  const dir = path.resolve(basedir);
  const pidfile = pidfilePath(dir);
  const pid = readPidfile(pidfile);
  if (pid === null) return { kind: 'not-running', reason: `bbagent not running in ${dir} (no ${PIDFILE})` };
  if (!isProcessAlive(pid)) {
    removePidfile(pidfile);
    return { kind: 'not-running', reason: `bbagent process ${pid} is dead (removed stale ${PIDFILE} in ${dir})` };
  }
  if (!pidfileProcessAlive(pidfile, pid)) {
    // The pid was reused (a reboot since): that process is not ours to signal.
    removePidfile(pidfile);
    return {
      kind: 'not-running',
      reason: `bbagent not running in ${dir} (removed stale ${PIDFILE}: process ${pid} started after it was written, so it is another program)`,
    };
  }
  let sent: boolean;
  try {
    sent = platform.signalProcess(pid, 'TERM');
  } catch (err) {
    throw new AgentError('E_SIGNAL', `${COMMAND}: cannot signal process ${pid} (from ${pidfile}): ${(err as Error).message}`);
  }
  if (!sent) {
    releasePidfile(pidfile, pid);
    return { kind: 'not-running', reason: `bbagent not running in ${dir} (process ${pid} already exited)` };
  }
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    await sleep(STOP_POLL_MS);
    if (!isProcessAlive(pid)) {
      // The agent removes its pidfile on exit; this covers one that was killed before it could.
      releasePidfile(pidfile, pid);
      return { kind: 'stopped', pid };
    }
  }
  return { kind: 'timeout', pid };
}

export function describeTimeout(pid: number, waitMs: number = STOP_WAIT_MS): string {
  return `bbagent process ${pid} has not exited after ${waitMs / 1000} s ` + `(it may be letting running commands finish; run stop again to interrupt them)`;
}

export interface StopCommandDeps {
  /** The service manager asked whether a service runs the agent (default: this OS's). */
  manager?: Pick<ServiceManager, 'stopAgent'>;
}

/** The service running the agent in `dir`, if any; on Windows it is stopped through the manager here. */
async function serviceOfAgent(
  dir: string,
  manager: Pick<ServiceManager, 'stopAgent'>,
): Promise<{ via: 'exit' | 'manager'; service: string; pid: number } | undefined> {
  const pid = readPidfile(pidfilePath(dir));
  if (pid === null || !isProcessAlive(pid) || !pidfileProcessAlive(pidfilePath(dir), pid)) return undefined;
  try {
    const svc = await manager.stopAgent(dir, pid);
    return svc && { ...svc, pid };
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    throw new AgentError(err.code, `${COMMAND}: the worker runs as a service: ${err.message} (ending the process would make the service restart it)`);
  }
}

/** The command line split at its first '--': the words after it are what WinSW appends to a service's stop arguments. */
export function splitAppended(argv: readonly string[]): { own: string[]; appended: string[] | undefined } {
  const sep = argv.indexOf('--');
  return sep < 0 ? { own: [...argv], appended: undefined } : { own: argv.slice(0, sep), appended: argv.slice(sep + 1) };
}

/** --timeout: whole seconds, 1 to a day. */
export function parseDrainTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_STOP_TIMEOUT_S;
  const n = /^\d{1,6}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= 1 && n <= MAX_STOP_TIMEOUT_S)) throw new UsageError(`${COMMAND}: --timeout must be whole seconds from 1 to ${MAX_STOP_TIMEOUT_S}, not '${text}'`);
  return n;
}

/** What a stop command line asks for; `basedir` as given (the current directory by default). */
export interface StopLine {
  help: boolean;
  quiet: boolean;
  /** --drain, with its timeout and whether it is the Windows service's stop program. */
  drain: { timeoutS: number; service: boolean } | undefined;
  basedir: string;
  /** The words after '--' (WinSW appends the service's own arguments there). */
  appended: string[] | undefined;
}

export function parseStopLine(argv: readonly string[]): StopLine {
  const { own, appended } = splitAppended(argv);
  const { values, positionals } = parseCommandLine(COMMAND, own, OPTIONS, 1);
  const drain = values['drain'] === true;
  for (const name of ['timeout', 'service'] as const) {
    if (values[name] !== undefined && !drain) throw new UsageError(`${COMMAND}: --${name} goes with --drain (see '${COMMAND} --help')`);
  }
  if (appended !== undefined && values['service'] !== true) {
    throw new UsageError(`${COMMAND}: words after '--' are taken only with --service (see '${COMMAND} --help')`);
  }
  return {
    help: values['help'] === true,
    quiet: values['quiet'] === true,
    drain: drain ? { timeoutS: parseDrainTimeout(values['timeout'] as string | undefined), service: values['service'] === true } : undefined,
    // a service's stop names its BASEDIR; else the one in the service's own arguments that WinSW appended
    basedir: positionals[0] ?? (appended && basedirOfServiceArgs(appended)) ?? '.',
    appended,
  };
}

export async function stopCommand(argv: string[], io: CliIO, deps: StopCommandDeps = {}): Promise<number> {
  return reportErrors(io, async () => {
    const line = parseStopLine(argv);
    if (line.help) {
      io.out(STOP_USAGE);
      return EXIT_OK;
    }
    const dir = path.resolve(line.basedir);
    // buildbot-worker's isWorkerDir: a mistyped BASEDIR is an error, not "not running".
    if (!existsSync(configPath(dir)) && !existsSync(pidfilePath(dir))) {
      io.err(`${COMMAND}: invalid worker directory '${dir}' (no ${path.basename(configPath(dir))} or ${PIDFILE} in it)`);
      return EXIT_FAILED;
    }
    const quiet = line.quiet;
    if (line.drain) return drainCommand(dir, { ...line.drain, quiet }, io, line.appended);
    const svc = await serviceOfAgent(dir, deps.manager ?? (await currentServiceManager()));
    if (svc?.via === 'manager') {
      if (!quiet) io.out(`bbagent process ${svc.pid} is dead (the service ${svc.service} was stopped)`);
      return EXIT_OK;
    }
    const stays = svc ? `; the service ${svc.service} stays stopped until 'bbagent service start' or the next boot` : '';
    const result = await stopWorker(dir);
    switch (result.kind) {
      case 'stopped':
        if (!quiet) io.out(`bbagent process ${result.pid} is dead${stays}`);
        return EXIT_OK;
      case 'not-running':
        if (!quiet) io.out(result.reason);
        return EXIT_OK;
      case 'timeout':
        io.err(`${describeTimeout(result.pid)}${svc ? `; once it exits, the service ${svc.service} stays stopped` : ''}`);
        return EXIT_FAILED;
    }
  });
}

/** stop --drain: the drain, worded as stop's results are (under --service, into the agent's log as well). */
async function drainCommand(
  dir: string,
  o: { timeoutS: number; service: boolean; quiet: boolean },
  io: CliIO,
  appended: string[] | undefined,
): Promise<number> {
  // the service's stop program writes to the agent's log only: WinSW gives it an output pipe it never reads
  const note = o.service ? serviceNote(dir) : (line: string): void => (o.quiet ? undefined : io.out(line));
  const named = appended && basedirOfServiceArgs(appended);
  if (named !== undefined && path.resolve(named) !== dir) note(`the service runs ${path.resolve(named)}, this stop names ${dir}: draining ${dir}`);
  // at the command line nothing waits for a starting agent's socket; a service stop may come right after the start
  const socketRetryMs = o.service ? SOCKET_RETRY_MS : 0;
  const result: DrainResult = await drainWorker(dir, { timeoutS: o.timeoutS, service: o.service, note, platform: currentPlatform(), socketRetryMs });
  switch (result.kind) {
    case 'not-running':
      note(result.reason);
      return EXIT_OK;
    case 'drained':
      note(`bbagent process ${result.pid} is dead`);
      return EXIT_OK;
    case 'killed':
      return EXIT_OK;
    case 'no-answer':
      io.err(`${COMMAND}: bbagent process ${result.pid} does not answer on its control socket (${result.why}); 'bbagent stop' signals it instead`);
      return EXIT_FAILED;
    case 'timeout':
      io.err(`${COMMAND}: bbagent process ${result.pid} has not exited ${o.timeoutS} s after the drain request and its interrupts`);
      return EXIT_FAILED;
  }
}
