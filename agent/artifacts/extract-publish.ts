// The steps around an extraction that a cache also needs on its own: unique temp names beside a target, the
// `<target>.complete` marker written last, and the start-up sweep of what a crash left.
//
// Temp names are `<target>.extracting-<pid>-<hex>[-old]`: the pid lets a sweep spare the extractions of agents
// still running on a shared cache (several workers of one agent are one process; two agents are two pids).

import { syncDir } from '../fs/sync-dir.js';
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export const TEMP_INFIX = '.extracting-';
const TEMP_NAME = /\.extracting-(\d+)-[0-9a-f]+(-old)?$/;
export const COMPLETE_SUFFIX = '.complete';

/** A temp name beside `target`, unique to this process and call. */
export function tempPathFor(target: string, suffix = ''): string {
  return `${target}${TEMP_INFIX}${process.pid}-${randomBytes(6).toString('hex')}${suffix}`;
}

export function completeMarkerPath(target: string): string {
  return `${path.resolve(target)}${COMPLETE_SUFFIX}`;
}

/**
 * Writes `<target>.complete` (a small JSON record: `info` plus the time) atomically: temp file, fsync, rename,
 * fsync of the parent. Call it once the tree at `target` is published and recorded; until then a reader must
 * treat the tree as absent.
 */
export async function markComplete(target: string, info: Record<string, unknown> = {}): Promise<void> {
  const marker = completeMarkerPath(target);
  const temp = tempPathFor(marker);
  try {
    const fh = await open(temp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify({ ...info, completed: new Date().toISOString() })}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, marker);
    await syncDir(path.dirname(marker));
  } catch (err) {
    await rm(temp, { force: true });
    throw new AgentError('E_EXTRACT_IO', `cannot write the completion marker ${marker}: ${errorMessage(err)}`);
  }
}

/** True when `target` is a directory and its marker exists. */
export async function isComplete(target: string): Promise<boolean> {
  try {
    const [dir, marker] = await Promise.all([stat(target), stat(completeMarkerPath(target))]);
    return dir.isDirectory() && marker.isFile();
  } catch {
    return false;
  }
}

export interface SweepOptions {
  logger: Logger;
  /** Directory levels below `cacheDir` searched (default 2: `cache/<kind>/<key>.extracting-…`). */
  depth?: number;
  /** Whether the process `pid` still runs (default: signal 0); its temp directories are spared. */
  isAlive?: (pid: number) => boolean;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the `*.extracting-*` temp directories and files under `cacheDir` whose process is gone (a crash, a
 * kill -9). Never follows symlinks. Returns the removed paths.
 */
export async function sweepExtractTemps(cacheDir: string, opts: SweepOptions): Promise<string[]> {
  const isAlive = opts.isAlive ?? pidAlive;
  const removed: string[] = [];
  let level = [path.resolve(cacheDir)];
  for (let depth = opts.depth ?? 2; depth >= 0 && level.length > 0; depth--) {
    const next: string[] = [];
    for (const dir of level) {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const full = path.join(dir, e.name);
        const m = TEMP_NAME.exec(e.name);
        if (m && !isAlive(Number(m[1]))) {
          await rm(full, { recursive: true, force: true, maxRetries: 3 });
          removed.push(full);
          opts.logger.info(`removed ${full}, left by an extraction that did not finish`);
        } else if (!m && e.isDirectory()) next.push(full);
      }
    }
    level = next;
  }
  return removed;
}
