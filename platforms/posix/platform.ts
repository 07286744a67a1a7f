// The POSIX platform (Linux and macOS): /bin/sh, process groups, rm/cp for tree commands.

import { readFileSync } from 'node:fs';
import type { Platform } from '../types.js';
import { posixSpawn } from './spawn.js';
import { signalNumber } from './signals.js';
import { processStartMs, treePids } from './tree.js';

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
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
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
    killTree(pid, sig, known = []) {
      const pids = new Set([...treePids(pid, id), ...known.filter(alive)]);
      signal(-pid, sig); // the group first, so nothing in it can fork past us
      for (const p of pids) signal(p, sig);
      return [...pids];
    },
    treeAlive: (pid) => treePids(pid, id).length > 0,
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
