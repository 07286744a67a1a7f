// Host facts on POSIX (Linux and macOS): the OS release and product from files, device numbers in the C
// library's encoding, owner names from the account databases.

import { readFileSync } from 'node:fs';
import type { HostFacts } from '../host-facts.js';
import { darwinDeviceNumbers, linuxDeviceNumbers } from './devices.js';
import { posixOwnerNames } from './owners.js';

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

function osRelease(): Record<string, string> {
  try {
    return parseOsRelease(readFileSync('/etc/os-release', 'utf8'));
  } catch {
    return {};
  }
}

function darwinProduct(): { name: string; version: string } {
  let plist: { name: string; version: string } | undefined;
  try {
    plist = parseSystemVersionPlist(readFileSync('/System/Library/CoreServices/SystemVersion.plist', 'utf8'));
  } catch {
    // not readable: fall back to the kernel's name
  }
  return plist ?? { name: 'macOS', version: '' };
}

export function posixHostFacts(id: 'linux' | 'darwin'): HostFacts {
  return {
    id,
    osName: 'posix',
    pathListSeparator: ':',
    osRelease,
    osProduct() {
      if (id === 'darwin') return darwinProduct();
      const rel = osRelease();
      return { name: rel['name'] ?? 'Linux', version: rel['version_id'] ?? '' };
    },
    deviceNumbers: id === 'darwin' ? darwinDeviceNumbers : linuxDeviceNumbers,
    ownerNames: () => posixOwnerNames(),
  };
}
