// The POSIX platform (Linux and macOS): /bin/sh, process groups, rm/cp for tree commands.

import { readFileSync } from 'node:fs';
import type { Platform } from '../types.js';
import { posixSpawn } from './spawn.js';
import { signalNumber } from './signals.js';
import { processStartMs } from './start-time.js';
import { inspectLinux, inspectPs, stacksDarwin, stacksLinux } from './inspect.js';
import { LinuxProcScanner, scanPs, selectProcesses } from './processes.js';

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

export function posixPlatform(id: 'linux' | 'darwin'): Platform {
  const signal = (pid: number, sig: string): void => {
    try {
      process.kill(pid, `SIG${sig}` as NodeJS.Signals);
    } catch {
      // already gone
    }
  };
  const scanner = id === 'linux' ? new LinuxProcScanner() : undefined;
  const findProcesses: Platform['findProcesses'] = async (q) => {
    const procs = scanner ? await scanner.scan(q) : await scanPs(q);
    return selectProcesses(procs, q);
  };
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
      if (q.group !== undefined) signal(-q.group, sig); // the group first, so nothing in it can fork past us
      const found = await findProcesses(q);
      // the scan took a while: signal only processes that are still the ones it found (no reused pid)
      const live = scanner ? found.filter((p) => scanner.stillSame(p)) : found;
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
