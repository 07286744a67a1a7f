// `bbagent stop`: signals the process named in <basedir>/bbagent.pid with SIGTERM and waits for it to exit,
// as buildbot-worker's stop does with twistd.pid. It needs no valid config, so a broken one can still be stopped.
// Exit codes and messages as buildbot-worker's: a worker that is not running (no pidfile, or a stale one) is
// said so on stdout with exit 0, so `stop; start` works under `set -e`; a directory that is no worker
// directory, and a process that does not go away, exit 1.
// Under a service manager the stop is for good: the agent's drain ends in exit 0, which systemd's
// Restart=on-failure and launchd's SuccessfulExit=false do not restart (no root, no systemctl needed); on Windows,
// where no signal drains the agent, the service is stopped through the Service Control Manager.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentPlatform, currentServiceManager, ServiceError, type ServiceManager } from '../../platforms/index.js';
import type { ProcessControl } from '../../platforms/types.js';
import { configPath } from '../config/load.js';
import { AgentError } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { PIDFILE, isProcessAlive, pidfilePath, pidfileProcessAlive, readPidfile, releasePidfile, removePidfile } from './pidfile.js';

const COMMAND = 'bbagent stop';

export const STOP_USAGE = `Usage: bbagent stop [--quiet] [BASEDIR]

Stops the worker running in BASEDIR (default: the current directory): sends it SIGTERM and waits up to 10 s.
The agent first lets running commands finish; run stop again to interrupt them. As buildbot-worker's stop,
it exits 0 when the worker is not running (no bbagent.pid, or one naming a dead process), and 1 when BASEDIR
is not a worker directory or the process has not exited within the 10 s.
A worker run by 'bbagent service' stays stopped (its clean exit is not restarted) until 'bbagent service
start' or the next boot; on Windows stop asks the service manager (an elevated prompt), which lets running
builds finish.

Options:
  -q, --quiet   print nothing but errors
  -h, --help    show this help`;

const OPTIONS: OptionSpec = {
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

export async function stopCommand(argv: string[], io: CliIO, deps: StopCommandDeps = {}): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 1);
    if (values['help']) {
      io.out(STOP_USAGE);
      return EXIT_OK;
    }
    const dir = path.resolve(positionals[0] ?? '.');
    // buildbot-worker's isWorkerDir: a mistyped BASEDIR is an error, not "not running".
    if (!existsSync(configPath(dir)) && !existsSync(pidfilePath(dir))) {
      io.err(`${COMMAND}: invalid worker directory '${dir}' (no ${path.basename(configPath(dir))} or ${PIDFILE} in it)`);
      return EXIT_FAILED;
    }
    const quiet = values['quiet'] === true;
    const svc = await serviceOfAgent(dir, deps.manager ?? currentServiceManager());
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
