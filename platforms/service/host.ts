// The real ServiceHost: root/administrator check, user lookup (getent on Linux, id elsewhere), path owners.

import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { defaultRunner, type ServiceHost, type UserInfo } from './common.js';

function lookupPosixUser(nameOrUid: string | number): UserInfo | undefined {
  const key = String(nameOrUid);
  try {
    // getent also sees NSS users (LDAP, sssd) that /etc/passwd lacks.
    const line = execFileSync('getent', ['passwd', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0] ?? '';
    const [name, , uid, gid, , home] = line.split(':');
    if (name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' };
  } catch {
    // no getent (macOS) or no such user: try id below
  }
  try {
    const id = (flag: string): string => execFileSync('id', [flag, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const name = id('-un');
    return { name, uid: Number(id('-u')), gid: Number(id('-g')), home: process.platform === 'darwin' ? `/Users/${name}` : `/home/${name}` };
  } catch {
    return undefined;
  }
}

function isWindowsAdmin(): boolean {
  try {
    // `net session` succeeds only in an elevated process; it needs no extra software.
    execFileSync('net', ['session'], { stdio: 'ignore', windowsHide: true });
    return true;
  } catch {
    return false;
  }
}

export function realServiceHost(): ServiceHost {
  return {
    run: defaultRunner,
    isPrivileged: () => (process.platform === 'win32' ? isWindowsAdmin() : process.geteuid?.() === 0),
    uid: () => process.getuid?.() ?? -1,
    lookupUser: (u) => (process.platform === 'win32' ? undefined : lookupPosixUser(u)),
    ownerOf: (p) => {
      try {
        return statSync(p).uid;
      } catch {
        return undefined;
      }
    },
  };
}
