// The start-up sweep: with the process lock held, everything under the cache root that is not a complete entry
// goes: temp files and directories in ROOT/.tmp (partials of a produce or a marker, trees being removed), data
// without a valid marker (a publish cut between rename and marker), markers without data, markers whose recorded
// size disagrees with the file, and names the cache never writes. What stays becomes the in-memory index. The
// sweep does not hash (a hit does): it checks what a stat can.

import { lstat, opendir, stat } from 'node:fs/promises';
import { removeAll } from './cache-remove.js';
import path from 'node:path';
import type { Logger } from '../log.js';
import { HASH_ALGORITHMS, keyFromEntryName, LOCK_FILE, MARKER_SUFFIX, TMP_DIR, type CacheKey } from './cache-key.js';
import { alive, LOCK_TEMP, TAKEOVER_SUFFIX } from './cache-lock.js';
import type { IndexEntry } from './cache-index.js';
import { readEntryMarker } from './cache-marker.js';

export interface SweepReport {
  /** Files, directories and links removed (a removed directory counts with everything under it). */
  removedItems: number;
  /** Bytes of the files removed. */
  removedBytes: number;
  /** What was removed and why, one line each (also logged). */
  removed: string[];
  /** The complete entries found. */
  entries: IndexEntry[];
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of await opendir(dir)) out.push(d.name);
  return out.sort();
}

/** Items and file bytes under `p` (p included), without following links; iterative. */
export async function treeUsage(p: string): Promise<{ items: number; bytes: number }> {
  let items = 0;
  let bytes = 0;
  const pending = [p];
  while (pending.length > 0) {
    const cur = pending.pop()!;
    const st = await lstat(cur).catch(() => undefined);
    if (!st) continue;
    items++;
    if (st.isFile()) bytes += st.size;
    if (st.isDirectory()) for (const n of await names(cur).catch(() => [])) pending.push(path.join(cur, n));
  }
  return { items, bytes };
}

class Sweeper {
  readonly report: SweepReport = { removedItems: 0, removedBytes: 0, removed: [], entries: [] };
  constructor(
    private readonly root: string,
    private readonly logger: Logger,
  ) {}

  async remove(p: string, why: string): Promise<void> {
    const usage = await treeUsage(p);
    await removeAll(p);
    this.report.removedItems += usage.items;
    this.report.removedBytes += usage.bytes;
    const line = `cache sweep: removed '${path.relative(this.root, p)}' (${usage.bytes} bytes): ${why}`;
    this.report.removed.push(line);
    this.logger.info(line);
  }

  async sweepRoot(): Promise<void> {
    for (const name of await names(this.root)) {
      const p = path.join(this.root, name);
      // other openers' temp lock files come and go at the root while this one sweeps
      const st = await lstat(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
      if (st === undefined) continue;
      if (name === LOCK_FILE && st.isFile()) continue;
      // another opener's takeover guard or lock being created (cache-lock.ts); a dead process's temp lock goes
      if (name === LOCK_FILE + TAKEOVER_SUFFIX && st.isFile()) continue;
      const lockTemp = LOCK_TEMP.exec(name);
      if (lockTemp && st.isFile() && alive(Number(lockTemp[1]))) continue;
      if (name === TMP_DIR && st.isDirectory()) {
        for (const t of await names(p)) await this.remove(path.join(p, t), 'left over by an interrupted publish or removal');
      } else if (HASH_ALGORITHMS.includes(name as never) && st.isDirectory()) {
        await this.sweepAlgorithm(name, p);
      } else {
        await this.remove(p, 'not something the cache writes');
      }
    }
  }

  private async sweepAlgorithm(algorithm: string, dir: string): Promise<void> {
    for (const prefix of await names(dir)) {
      const p = path.join(dir, prefix);
      const st = await lstat(p);
      if (/^[0-9a-f]{2}$/.test(prefix) && st.isDirectory()) await this.sweepPrefix(algorithm, prefix, p);
      else await this.remove(p, 'not something the cache writes');
    }
  }

  private async sweepPrefix(algorithm: string, prefix: string, dir: string): Promise<void> {
    const all = await names(dir);
    const present = new Set(all);
    for (const name of all) {
      const base = name.endsWith(MARKER_SUFFIX) ? name.slice(0, -MARKER_SUFFIX.length) : name;
      const key = keyFromEntryName(algorithm, prefix, base);
      if (!key) {
        await this.remove(path.join(dir, name), 'not something the cache writes');
      } else if (name !== base) {
        if (!present.has(base)) await this.remove(path.join(dir, name), 'a marker without its entry');
      } else {
        await this.checkEntry(key, path.join(dir, name), present.has(name + MARKER_SUFFIX));
      }
    }
  }

  private async checkEntry(key: CacheKey, data: string, hasMarker: boolean): Promise<void> {
    const marker = hasMarker ? await readEntryMarker(this.root, key) : undefined;
    const why = !hasMarker
      ? 'no .complete marker (an interrupted publish)'
      : !marker
        ? 'its .complete marker is unreadable'
        : await this.mismatch(key, data, marker.bytes);
    if (why !== undefined) {
      if (hasMarker) await this.remove(data + MARKER_SUFFIX, `the marker of an entry removed: ${why}`);
      await this.remove(data, why);
      return;
    }
    const mst = await stat(data + MARKER_SUFFIX);
    this.report.entries.push({ key, bytes: marker!.bytes, lastUsedMs: mst.mtimeMs });
  }

  private async mismatch(key: CacheKey, data: string, bytes: number): Promise<string | undefined> {
    const st = await lstat(data);
    if (key.kind === 'extracted') return st.isDirectory() ? undefined : 'an extracted entry that is not a directory';
    if (!st.isFile()) return 'a file entry that is not a regular file';
    return st.size === bytes ? undefined : `${st.size} bytes, its marker says ${bytes}`;
  }
}

/** Sweeps `root` (which must exist); logs each removal and a summary. */
export async function sweepCache(root: string, logger: Logger): Promise<SweepReport> {
  const s = new Sweeper(root, logger);
  await s.sweepRoot();
  const r = s.report;
  const kept = r.entries.reduce((sum, e) => sum + e.bytes, 0);
  logger.info(`cache sweep of '${root}': removed ${r.removedItems} items (${r.removedBytes} bytes); kept ${r.entries.length} entries (${kept} bytes)`);
  return r;
}
