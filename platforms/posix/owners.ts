// Owner names on POSIX, as Python's pwd.getpwuid / grp.getgrgid give them: from /etc/passwd and /etc/group,
// plus this process's own account from the C library (getpwuid_r, which also asks NSS and macOS's Directory
// Services: on macOS /etc/passwd lists only system accounts, not the user the worker runs as).

import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { OwnerNames } from '../host-facts.js';

/** id -> name from a passwd- or group-format file (name:password:id:...); the first entry of an id wins, as in getpwuid. */
export function parseAccountFile(text: string): Map<number, string> {
  const map = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] && f.length >= 3 && f[2] !== '' && Number.isInteger(id) && !map.has(id)) map.set(id, f[0]);
  }
  return map;
}

/** What posixOwnerNames reads; tests replace it. */
export interface OwnerSources {
  /** A database file's text; throws when there is none. */
  readFile(path: string): string;
  /** This process's own account (os.userInfo()); throws when it has none. */
  self(): { uid: number; username: string };
}

const realSources: OwnerSources = {
  readFile: (p) => readFileSync(p, 'utf8'),
  self: () => os.userInfo(),
};

function loadNames(sources: OwnerSources, file: string): Map<number, string> {
  try {
    return parseAccountFile(sources.readFile(file));
  } catch {
    return new Map(); // no such database on this system: names stay empty
  }
}

/** A lookup table that reads each database once, when first asked. */
export function posixOwnerNames(sources: OwnerSources = realSources): OwnerNames {
  let users: Map<number, string> | undefined;
  let groups: Map<number, string> | undefined;
  let me: { uid: number; username: string } | null | undefined;
  const ownName = (uid: number): string => {
    if (me === undefined) {
      try {
        me = sources.self();
      } catch {
        me = null; // an account-less uid (a container's): only the files can name it
      }
    }
    return me?.uid === uid ? me.username : '';
  };
  return {
    user(uid) {
      users ??= loadNames(sources, '/etc/passwd');
      return users.get(uid) ?? ownName(uid);
    },
    group(gid) {
      groups ??= loadNames(sources, '/etc/group');
      return groups.get(gid) ?? '';
    },
  };
}
