// Where an agent's control socket lives (bbagent status talks to it): a Unix socket in the agent's own
// directory, or a named pipe on Windows. A socket path is limited by sun_path (108 bytes on Linux, 104 on
// macOS, with its NUL): for a deep BASEDIR the socket goes to a short owner-only directory under /tmp instead,
// named by a hash of the directory it stands for, so the agent and `bbagent status` find the same one.

import { createHash } from 'node:crypto';
import { chmodSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../agent/errors.js';
import { makedirs } from './common/makedirs.js';

/** The longest socket path every POSIX system takes: macOS's sun_path is 104 bytes, one for the NUL. */
export const MAX_SOCKET_PATH_BYTES = 103;
export const SOCKET_NAME = 'control.sock';

export interface ControlEndpoint {
  /** What net's listen() and connect() take: a socket path or a pipe name. */
  path: string;
  /** The owner-only directory that holds the socket; null for a named pipe (no file). */
  dir: string | null;
  /** The user the agent runs as, who must own the socket (POSIX); null: not checked. */
  owner: number | null;
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/**
 * The control endpoint of the agent whose own directory is `runDir` (absolute), run by user `uid` (the agent
 * passes its own; `bbagent status`, which may run as another user, root say, the owner of runDir). `os` is the
 * running system unless a test gives one.
 */
export function controlEndpoint(runDir: string, os: NodeJS.Platform = process.platform, uid: number | null = process.getuid?.() ?? null): ControlEndpoint {
  if (os === 'win32') {
    // pipe names are case-insensitive, as Windows paths are
    return { path: `\\\\.\\pipe\\bbagent-${digest(path.win32.resolve(runDir).toLowerCase())}`, dir: null, owner: null };
  }
  const full = path.posix.join(runDir, SOCKET_NAME);
  if (Buffer.byteLength(full) <= MAX_SOCKET_PATH_BYTES) return { path: full, dir: runDir, owner: uid };
  // not os.tmpdir(): TMPDIR may differ between the agent (a service) and the shell that runs status
  const dir = `/tmp/bbagent-${uid ?? 'user'}`;
  return { path: `${dir}/${digest(runDir)}.sock`, dir, owner: uid };
}

/** The uid that owns `dir` (the agent's user, for the directory it made), or this process's when it is absent. */
export function ownerOf(dir: string): number | null {
  try {
    return lstatSync(dir).uid;
  } catch {
    return process.getuid?.() ?? null;
  }
}

/**
 * Creates the endpoint's directory owner-only (0700) and checks that it is a directory of ours, not a
 * link or another user's (a shared /tmp): the socket in it is then reachable by its owner alone.
 */
export function prepareControlDir(endpoint: ControlEndpoint): void {
  const dir = endpoint.dir;
  if (dir === null) return;
  try {
    makedirs(dir, { existOk: true, mode: 0o700 });
    const st = lstatSync(dir);
    const uid = endpoint.owner;
    if (!st.isDirectory()) throw new Error('it is not a directory');
    if (uid !== null && st.uid !== uid) throw new Error(`it belongs to user ${st.uid}, not to this user (${uid})`);
    if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  } catch (err) {
    throw new AgentError('E_CONTROL', `control socket directory ${dir}: ${(err as Error).message}`);
  }
}

/** A socket found at the endpoint is the agent's: owned by the agent's user (a name in /tmp could be anyone's). */
export function controlSocketOwned(endpoint: ControlEndpoint): boolean {
  if (endpoint.owner === null) return true;
  try {
    return lstatSync(endpoint.path).uid === endpoint.owner;
  } catch {
    return true; // absent: connecting says so
  }
}
