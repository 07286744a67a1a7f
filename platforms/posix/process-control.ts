// Process control on POSIX (Linux and macOS): /bin/sh, process groups, signals, rm/cp for tree commands.

import type { PidStamp, ProcessControl, ProcessQuery, ProcessRef } from '../process-control.js';
import { searchPath } from '../common/find-program.js';
import { signalProcess } from '../common/signal-process.js';
import { posixSpawn } from './spawn.js';
import { signalNumber } from './signals.js';
import { processStartMs } from './start-time.js';
import { inspectLinux, inspectPs, stacksDarwin, stacksLinux } from './inspect.js';
import { groupIsLive, LinuxProcScanner, scanPs, selectProcesses, type ScannedProcess } from './processes.js';

/** What posixProcessControl uses to find and signal processes; tests replace them. */
export interface PosixProcessDeps {
  /** Sends signal `sig` (a name without SIG) to a pid (negative: a process group); a process already gone is no error. */
  signal?: (pid: number, sig: string) => void;
  /** Lists the host's processes, and (where it can) tells whether a found process is still the same one. */
  scanner?: { scan(q: ProcessQuery): Promise<ScannedProcess[]>; stillSame?(ref: ProcessRef): boolean; stamp?(): Omit<PidStamp, 'firstPid'> | undefined };
}

export function posixProcessControl(id: 'linux' | 'darwin', deps: PosixProcessDeps = {}): ProcessControl {
  const signal =
    deps.signal ??
    ((pid: number, sig: string): void => {
      try {
        signalProcess(pid, sig);
      } catch {
        // not ours to signal: the scan found it, the kill cannot reach it
      }
    });
  const scanner = deps.scanner ?? (id === 'linux' ? new LinuxProcScanner() : { scan: scanPs });
  return {
    supportsPty: true,
    shellArgv: (command) => ['/bin/sh', '-c', command],
    spawn: posixSpawn,
    findProgram: (name, environ) => searchPath(name, (environ['PATH'] ?? '').split(':'), ['']),
    tracksMarkers: true,
    pidStamp: () => scanner.stamp?.(),
    findProcesses: async (q) => selectProcesses(await scanner.scan(q), q),
    async killProcesses(sig, q) {
      // While its first process is unreaped the group's id cannot be reused: the group goes first, so nothing in
      // it can fork past us. After that, an empty group's id may belong to someone else by now: the group is
      // signalled only when the scan shows a live member of the command's own (groupIsLive).
      const leaderUnreaped = q.root !== undefined;
      if (q.group !== undefined && leaderUnreaped) signal(-q.group, sig);
      const procs = await scanner.scan(q);
      if (q.group !== undefined && !leaderUnreaped && groupIsLive(procs, q)) signal(-q.group, sig);
      const found = selectProcesses(procs, q);
      // the scan took a while: signal only processes that are still the ones it found (no reused pid)
      const live = scanner.stillSame ? found.filter((p) => scanner.stillSame!(p)) : found;
      for (const p of live) signal(p.pid, sig);
      return live;
    },
    signalProcess,
    inspectProcesses: (pids, limits) => (id === 'linux' ? inspectLinux(pids, limits) : inspectPs(pids, limits)),
    collectStacks: (pids, limits) => (id === 'linux' ? stacksLinux(pids, limits) : stacksDarwin(pids, limits)),
    signalNumber,
    processStartMs: (pid) => processStartMs(pid, id),
    removeTreeArgv: (p) => ['rm', '-rf', p],
    chmodTreeArgv: (p) => ['chmod', '-Rf', 'u+rwx', p],
    copyTreeArgv: (from, to) => ['cp', '-R', '-P', '-p', '-v', from, to],
  };
}
