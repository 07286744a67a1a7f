// `bbagent stop --drain`: asks the agent over its control socket (a Unix socket, a named pipe on Windows) for
// its first stop stage, the one a first SIGTERM starts under systemd: running commands finish, then the agent
// detaches and exits 0; after the stop timeout it interrupts what still runs. The command waits for the agent
// to exit. With --service it is the Windows service's stop program: WinSW runs it when the service is stopped
// and appends the service's own arguments (`start --nodaemon BASEDIR`) after its `--`; it then writes what it
// does to BASEDIR/bbagent.log (nobody reads its output), and ends the agent's process tree itself when the
// socket does not answer or the agent outlives the timeout, since WinSW 1.x waits for the agent without end.

import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProcessControl } from '../../platforms/types.js';
import { askAgent, endpointFor, NotRunningError } from '../control/client.js';
import type { DrainReply } from '../control/index.js';
import { AgentError, errorMessage } from '../errors.js';
import { INTERRUPT_GRACE_MS } from '../shutdown.js';
import { PIDFILE, isProcessAlive, pidfilePath, pidfileProcessAlive, readPidfile, releasePidfile, removePidfile } from './pidfile.js';
import { LOG_FILE } from './start.js';

/** How long a drain keeps asking a live agent whose socket does not answer yet (it may be starting). */
export const SOCKET_RETRY_MS = 10_000;
/** Past the drain timeout and the interrupt grace, how long the agent may still take to exit (its last output, the cache). */
export const EXIT_SLACK_MS = 15_000;
/** How long a killed tree's root may take to be gone. */
const KILL_WAIT_MS = 5000;
const POLL_MS = 200;

export type DrainResult =
  | { kind: 'not-running'; reason: string }
  | { kind: 'drained'; pid: number; drain: DrainReply['drain'] }
  /** The agent did not exit in time (without --service: it is left running). */
  | { kind: 'timeout'; pid: number }
  /** No answer on the control socket (without --service: the agent is left running). */
  | { kind: 'no-answer'; pid: number; why: string }
  /** --service: the agent's process tree was ended, for `why`. */
  | { kind: 'killed'; pid: number; why: string };

export interface DrainOptions {
  /** Whole seconds the agent's commands have to finish before it interrupts them. */
  timeoutS: number;
  /** The service's stop program: on no answer or on timeout, end the agent's process tree. */
  service: boolean;
  /** Progress lines (stdout, or the agent's log under --service). */
  note: (line: string) => void;
  platform: Pick<ProcessControl, 'killProcesses'>;
  socketRetryMs?: number;
  exitSlackMs?: number;
}

/** The words WinSW appended (the service's <arguments>: [script] start [options] BASEDIR): the BASEDIR, if they are that. */
export function basedirOfServiceArgs(words: readonly string[]): string | undefined {
  const start = words.indexOf('start');
  const last = words[words.length - 1];
  return start >= 0 && start < words.length - 1 && last !== undefined && !last.startsWith('-') ? last : undefined;
}

/** A line for BASEDIR/bbagent.log, in the agent's text format. */
export function serviceNote(basedir: string): (line: string) => void {
  const file = path.join(basedir, LOG_FILE);
  return (line) => {
    try {
      appendFileSync(file, `${new Date().toISOString()} [info] bbagent stop --drain (service stop): ${line}\n`);
    } catch {
      // a log that cannot be written must not keep the service from stopping
    }
  };
}

/** Asks for the drain, retrying while the agent lives and its socket does not answer yet; a string says why it failed. */
async function askDrain(basedir: string, pid: number | undefined, o: DrainOptions): Promise<DrainReply | string> {
  const until = Date.now() + (o.socketRetryMs ?? SOCKET_RETRY_MS);
  for (;;) {
    try {
      const reply = (await askAgent(endpointFor(basedir, 'client'), { request: 'drain', timeoutS: o.timeoutS })) as Partial<DrainReply> & { error?: unknown };
      if (reply?.ok === true && (reply.drain === 'started' || reply.drain === 'already') && Number.isSafeInteger(reply.pid)) return reply as DrainReply;
      throw new AgentError('E_CONTROL', `the agent refused the drain: ${typeof reply?.error === 'string' ? reply.error : JSON.stringify(reply).slice(0, 200)}`);
    } catch (err) {
      const retry = err instanceof NotRunningError && pid !== undefined && Date.now() < until && isProcessAlive(pid);
      if (!retry) return errorMessage(err);
    }
    await sleep(POLL_MS);
  }
}

/** Resolves true once `pid` is gone, false at the deadline. */
async function exitedBy(pid: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) return true;
    await sleep(POLL_MS);
  }
  return !isProcessAlive(pid);
}

/** Ends the agent's process tree (the service's last resort) and waits briefly for it to go. */
async function killTree(pidfile: string, pid: number, why: string, o: DrainOptions): Promise<DrainResult> {
  o.note(`${why}: ending process ${pid} and its process tree`);
  await o.platform.killProcesses('KILL', { root: pid });
  if (await exitedBy(pid, Date.now() + KILL_WAIT_MS)) releasePidfile(pidfile, pid);
  return { kind: 'killed', pid, why };
}

/** The live agent the pidfile names, or why there is none (a stale pidfile is removed). */
function pidfileAgent(pidfile: string, dir: string, service: boolean): number | string {
  let pid: number | null;
  try {
    pid = readPidfile(pidfile);
  } catch (err) {
    // a garbled pidfile: the service's stop still drains what answers on the socket
    if (!service) throw err;
    return errorMessage(err);
  }
  if (pid === null) return `bbagent not running in ${dir} (no ${PIDFILE})`;
  if (!isProcessAlive(pid) || !pidfileProcessAlive(pidfile, pid)) {
    removePidfile(pidfile);
    return `bbagent process ${pid} is dead (removed stale ${PIDFILE} in ${dir})`;
  }
  return pid;
}

/** Drains the agent running in `basedir` and waits for it to exit; prints nothing itself but progress notes. */
export async function drainWorker(basedir: string, o: DrainOptions): Promise<DrainResult> {
  const dir = path.resolve(basedir);
  const pidfile = pidfilePath(dir);
  const known = pidfileAgent(pidfile, dir, o.service);
  if (typeof known === 'string') {
    // no live agent in the pidfile; one may answer all the same (its pidfile removed by hand): it is drained
    const reply = await askDrain(dir, undefined, { ...o, socketRetryMs: 0 });
    return typeof reply === 'string' ? { kind: 'not-running', reason: known } : waitForExit(pidfile, reply, o);
  }
  const reply = await askDrain(dir, known, o);
  if (typeof reply !== 'string') return waitForExit(pidfile, reply, o);
  if (!isProcessAlive(known)) return { kind: 'not-running', reason: `bbagent process ${known} exited meanwhile` };
  if (o.service) {
    // what WinSW does to an agent that Ctrl+C did not stop (a program cannot send Ctrl+C to another console)
    return killTree(pidfile, known, `the agent's control socket does not answer (${reply}), so it cannot be drained`, o);
  }
  return { kind: 'no-answer', pid: known, why: reply };
}

/** After the agent accepted the drain: waits for it to exit (the service's stop ends its tree past the bound). */
async function waitForExit(pidfile: string, reply: DrainReply, o: DrainOptions): Promise<DrainResult> {
  const pid = reply.pid;
  o.note(
    reply.drain === 'started'
      ? `draining process ${pid}: waiting for ${reply.running} running command(s) to finish (up to ${o.timeoutS} s, then they are interrupted)`
      : `process ${pid} is draining already: waiting for it to exit`,
  );
  const deadline = Date.now() + o.timeoutS * 1000 + INTERRUPT_GRACE_MS + (o.exitSlackMs ?? EXIT_SLACK_MS);
  if (await exitedBy(pid, deadline)) {
    releasePidfile(pidfile, pid);
    return { kind: 'drained', pid, drain: reply.drain };
  }
  if (o.service) return killTree(pidfile, pid, `process ${pid} has not exited ${o.timeoutS} s after the drain request and its interrupts`, o);
  return { kind: 'timeout', pid };
}
