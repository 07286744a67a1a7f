// One agent process per cache directory: pins, the singleflight and the LRU index live in the process that
// opened the cache, so a second process sharing the directory could evict an entry the first one is using, or
// sweep its partial files away. ROOT/.lock holds the opener's pid; a second opener fails with E_CACHE_LOCKED
// while that pid is alive, and takes over a lock whose process is gone (kill -9). Several workers of one agent
// share one ArtifactCache object instead.
// - The lock is born whole: the pid is written to a temp file that is hard-linked to .lock (link fails if .lock
//   exists), so a lock being created is never read empty and taken for a stale one.
// - Takeovers of a stale lock run one at a time, under ROOT/.lock.takeover (created exclusively, holding the pid
//   of the process taking over): two openers finding one stale lock at once cannot both remove it, and the
//   second then finds the first's live lock.
// Known gaps, documented in docs/artifacts.md: a reused pid of an unrelated live process looks like a holder
// (remove the file by hand), and a process killed inside its takeover leaves a guard that two openers might
// remove in the same instant.

import { randomBytes } from 'node:crypto';
import { link, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { LOCK_FILE } from './cache-key.js';

/** Roots opened by this process: a second open of one root in one process is the same mistake. */
const openedHere = new Set<string>();

export interface CacheLock {
  release(): Promise<void>;
}

/** Whether process `pid` runs (the sweep spares its temp lock files). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}

/** The guard of takeovers, beside the lock. */
export const TAKEOVER_SUFFIX = '.takeover';
/** Temp names of locks and guards being created: `.lock[.takeover].<pid>-<hex>` (the sweep removes those of dead processes). */
export const LOCK_TEMP = /^\.lock(?:\.takeover)?\.(\d+)-[0-9a-f]+$/;

/** Creates `file` holding this process's pid, whole, unless it exists (false then). */
async function createLock(file: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(`${process.pid}\n`);
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The pid in a lock file; undefined when it holds none, 'missing' when there is no file. */
async function readPid(file: string): Promise<number | undefined | 'missing'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** A live process other than this one. */
function liveHolder(pid: number | undefined | 'missing'): pid is number {
  return typeof pid === 'number' && pid !== process.pid && alive(pid);
}

/**
 * Replaces the stale lock `file` (naming `stale`, a gone process) by this process's, under the takeover guard;
 * false when another process is taking over or has just done so (the caller looks again).
 */
async function takeOver(file: string, stale: number | undefined | 'missing'): Promise<boolean> {
  if (stale === 'missing') return false; // released just now: the caller creates it afresh
  const guard = file + TAKEOVER_SUFFIX;
  if (!(await createLock(guard))) {
    // a guard whose process is gone was left by a kill inside a takeover
    if (!liveHolder(await readPid(guard))) await rm(guard, { force: true });
    return false;
  }
  try {
    // Under the guard nobody else replaces an existing lock (a new one is only created where none is): if it
    // still names the gone process, it is ours to replace.
    if ((await readPid(file)) !== stale) return false;
    await rm(file, { force: true });
    return await createLock(file);
  } finally {
    await rm(guard, { force: true });
  }
}

/** Takes ROOT/.lock for this process; E_CACHE_LOCKED when another live process holds it. */
export async function lockCache(root: string): Promise<CacheLock> {
  const resolved = path.resolve(root);
  if (openedHere.has(resolved)) {
    throw new AgentError('E_CACHE_LOCKED', `cache '${root}' is already open in this process (share the ArtifactCache object)`);
  }
  const file = path.join(root, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createLock(file)) return held(resolved, file);
    const holder = await readPid(file);
    if (liveHolder(holder)) {
      throw new AgentError(
        'E_CACHE_LOCKED',
        `cache '${root}' is in use by process ${holder}: two agent processes cannot share a cache directory (remove '${file}' if that process is not an agent)`,
      );
    }
    // its process is gone (a leftover of a crash), or it is being replaced right now
    if (await takeOver(file, holder)) return held(resolved, file);
  }
  throw new AgentError('E_CACHE_LOCKED', `cache '${root}': could not take '${file}' (another process keeps taking it)`);
}

function held(resolved: string, file: string): CacheLock {
  openedHere.add(resolved);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      openedHere.delete(resolved);
      await rm(file, { force: true });
    },
  };
}
