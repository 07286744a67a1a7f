// The POSIX platform (Linux and macOS): /bin/sh, process groups, rm/cp for tree commands.

import { readFileSync } from 'node:fs';
import type { Platform, ProcessQuery, ProcessRef } from '../types.js';
import { posixSpawn } from './spawn.js';
import { signalNumber } from './signals.js';
import { processStartMs } from './start-time.js';
import { inspectLinux, inspectPs, stacksDarwin, stacksLinux } from './inspect.js';
import { groupIsLive, LinuxProcScanner, scanPs, selectProcesses, type ScannedProcess } from './processes.js';

/** ProductName and ProductVersion of macOS's SystemVersion.plist (an XML plist; what `sw_vers` prints). */
export function parseSystemVersionPlist(text: string): { name: string; version: string } | undefined {
  const value = (key: string): string | undefined => new RegExp(`<key>${key}</key>\\s*<string>([^<]*)</string>`).exec(text)?.[1]?.trim();
  const name = value('ProductName');
  return name ? { name, version: value('ProductVersion') ?? '' } : undefined;
}

/** Parses os-release (KEY=value lines, quotes stripped, empty values skipped) as buildbot-worker does. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.length === 0 || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const value = line.slice(eq + 1);
    if (value) out[line.slice(0, eq).toLowerCase()] = value.replace(/^"+|"+$/g, '');
  }
  return out;
}

/** What posixPlatform uses to find and signal processes; tests replace them. */
export interface PosixProcessDeps {
  /** Sends signal `sig` (a name without SIG) to a pid (negative: a process group); a process already gone is no error. */
  signal?: (pid: number, sig: string) => void;
  /** Lists the host's processes, and (where it can) tells whether a found process is still the same one. */
  scanner?: { scan(q: ProcessQuery): Promise<ScannedProcess[]>; stillSame?(ref: ProcessRef): boolean };
}

export function posixPlatform(id: 'linux' | 'darwin', deps: PosixProcessDeps = {}): Platform {
  const signal =
    deps.signal ??
    ((pid: number, sig: string): void => {
      try {
        process.kill(pid, `SIG${sig}` as NodeJS.Signals);
      } catch {
        // already gone
      }
    });
  const scanner = deps.scanner ?? (id === 'linux' ? new LinuxProcScanner() : { scan: scanPs });
  const findProcesses: Platform['findProcesses'] = async (q) => selectProcesses(await scanner.scan(q), q);
  const osRelease = (): Record<string, string> => {
    try {
      return parseOsRelease(readFileSync('/etc/os-release', 'utf8'));
    } catch {
      return {};
    }
  };
  return {
    id,
    osName: 'posix',
    pathListSeparator: ':',
    supportsPty: true,
    shellArgv: (command) => ['/bin/sh', '-c', command],
    spawn: posixSpawn,
    tracksMarkers: true,
    findProcesses,
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
    inspectProcesses: (pids, limits) => (id === 'linux' ? inspectLinux(pids, limits) : inspectPs(pids, limits)),
    collectStacks: (pids, limits) => (id === 'linux' ? stacksLinux(pids, limits) : stacksDarwin(pids, limits)),
    signalNumber,
    processStartMs: (pid) => processStartMs(pid, id),
    removeTreeArgv: (p) => ['rm', '-rf', p],
    chmodTreeArgv: (p) => ['chmod', '-Rf', 'u+rwx', p],
    copyTreeArgv: (from, to) => ['cp', '-R', '-P', '-p', '-v', from, to],
    osRelease,
    osProduct() {
      if (id === 'darwin') {
        let plist: { name: string; version: string } | undefined;
        try {
          plist = parseSystemVersionPlist(readFileSync('/System/Library/CoreServices/SystemVersion.plist', 'utf8'));
        } catch {
          // not readable: fall back to the kernel's name
        }
        return plist ?? { name: 'macOS', version: '' };
      }
      const rel = osRelease();
      return { name: rel['name'] ?? 'Linux', version: rel['version_id'] ?? '' };
    },
  };
}
