// The pidfile (<basedir>/bbagent.pid) that `start` claims and `stop` reads, buildbot-worker's twistd.pid.
// A pidfile naming a dead process is stale and is removed; one naming a live process refuses a second start,
// unless that process started after the pidfile was written: then it only reuses the pid (after a reboot or a
// power cut the agent's pid is soon taken by another early process, often of another user), and the pidfile is
// stale too. buildbot-worker (twistd) refuses in that case, so a service could never start again.

import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { currentPlatform } from '../../platforms/index.js';
import { AgentError } from '../errors.js';

/** When a process started (ms since the epoch), undefined when unknown: the platform's, replaced in tests. */
export type StartTimeOf = (pid: number) => number | undefined;
const platformStartTime: StartTimeOf = (pid) => currentPlatform().processStartMs(pid);
/** Start times are known to about a second (/proc/stat's boot time has whole seconds). */
const START_TIME_SLACK_MS = 1500;

export const PIDFILE = 'bbagent.pid';

export function pidfilePath(basedir: string): string {
  return path.join(path.resolve(basedir), PIDFILE);
}

/**
 * The pid in `file`, or null when there is no pidfile. Throws E_PIDFILE_GARBLED when it holds something else,
 * E_PIDFILE when it cannot be read.
 */
export function readPidfile(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AgentError('E_PIDFILE', `${file}: cannot read: ${(err as Error).message}`);
  }
  const t = text.trim();
  const pid = Number(t);
  if (!/^[0-9]+$/.test(t) || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new AgentError('E_PIDFILE_GARBLED', `${file}: expected a process id, got ${JSON.stringify(t.slice(0, 40))}`);
  }
  return pid;
}

/** True while `pid` is a live process (signal 0 checks without signalling; EPERM means it exists). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function removePidfile(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Removes `file` only if it still names `pid` (a newer process may have claimed it since). */
export function releasePidfile(file: string, pid: number = process.pid): void {
  try {
    if (readPidfile(file) === pid) removePidfile(file);
  } catch {
    // unreadable or garbled: not ours to remove
  }
}

export interface PidfileCheck {
  /** The pid of a stale pidfile that was removed, if any. */
  removedStale: number | null;
}

/**
 * Refuses (E_RUNNING) when `file` names a live process other than `self`; removes a stale or garbled one.
 * Used by the daemonizing parent so it can refuse in the user's terminal before spawning anything.
 */
export function checkPidfile(file: string, self: number = process.pid, startTimeOf: StartTimeOf = platformStartTime): PidfileCheck {
  let pid: number | null;
  try {
    pid = readPidfile(file);
  } catch (err) {
    if (!(err instanceof AgentError) || err.code !== 'E_PIDFILE_GARBLED') throw err;
    removePidfile(file);
    return { removedStale: null };
  }
  if (pid === null || pid === self) return { removedStale: null };
  if (pidfileProcessAlive(file, pid, startTimeOf)) {
    throw new AgentError('E_RUNNING', `bbagent is already running in ${path.dirname(file)} (pid ${pid}, see ${file})`);
  }
  removePidfile(file);
  return { removedStale: pid };
}

/** True while the process that wrote `file` (naming `pid`) runs: `pid` is alive and is not a newer process. */
export function pidfileProcessAlive(file: string, pid: number, startTimeOf: StartTimeOf = platformStartTime): boolean {
  return isProcessAlive(pid) && !startedAfter(pid, file, startTimeOf);
}

/** True when `pid` started after `file` was last written: it cannot be the process that wrote it. */
function startedAfter(pid: number, file: string, startTimeOf: StartTimeOf): boolean {
  let written: number;
  try {
    written = statSync(file).mtimeMs;
  } catch {
    return false;
  }
  const started = startTimeOf(pid);
  return started !== undefined && started > written + START_TIME_SLACK_MS;
}

/** Attempts at claiming: another start may remove a stale pidfile or claim it between our check and our write. */
const CLAIM_ATTEMPTS = 3;

/**
 * Writes `pid` to `file`, refusing (E_RUNNING) when it names another live process. The exclusive create
 * makes two concurrent starts in the same directory end with exactly one owner.
 */
export function claimPidfile(file: string, pid: number = process.pid, startTimeOf: StartTimeOf = platformStartTime): PidfileCheck {
  let removedStale: number | null = null;
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AgentError('E_PIDFILE', `${file}: cannot create: ${(err as Error).message}`);
      }
      if (readPidfileOrNull(file) === pid) return { removedStale };
      removedStale = checkPidfile(file, pid, startTimeOf).removedStale ?? removedStale;
      continue;
    }
    try {
      writeSync(fd, `${pid}\n`);
    } finally {
      closeSync(fd);
    }
    return { removedStale };
  }
  throw new AgentError('E_PIDFILE', `${file}: could not claim it (another bbagent is starting in the same directory?)`);
}

function readPidfileOrNull(file: string): number | null {
  try {
    return readPidfile(file);
  } catch {
    return null;
  }
}
