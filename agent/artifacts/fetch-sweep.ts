// What a killed fetch without a cache leaves beside its destination, removed by the next fetch to that
// destination (its "start-up sweep"): the download's partial file `<dest>.partial-<pid>-<hex>`, the copy of a
// cache entry `<dest>.copy-<pid>-<hex>`, the archive of an extraction `<dir>.fetch-<pid>-<hex>` (and its own
// partial), the extraction's temp directory `<dir>.extracting-<pid>-<hex>`. Only names of this destination whose process is gone: a fetch still running in
// another process keeps its files.

import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { alive } from './cache-lock.js';

/** `<base>` then one or more of these: the temp names fetch, download and extraction give a destination. */
const LEFTOVER = /^(?:\.(?:partial|fetch|copy|extracting)-\d+-[0-9a-f]+(?:-old)?)+$/;

/** Removes the leftovers of dead processes beside `dest` (a file or directory path); returns what it removed. */
export async function sweepFetchLeftovers(dest: string, logger: Logger): Promise<string[]> {
  const dir = path.dirname(path.resolve(dest));
  const base = path.basename(dest);
  const removed: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const rest = name.slice(base.length);
    if (!LEFTOVER.test(rest)) continue;
    const pids = [...rest.matchAll(/-(\d+)-[0-9a-f]+/g)].map((m) => Number(m[1]));
    if (pids.some((pid) => alive(pid))) continue;
    const full = path.join(dir, name);
    await rm(full, { recursive: true, force: true, maxRetries: 3 });
    logger.info(`removed ${full}, left by a fetch that did not finish`);
    removed.push(full);
  }
  return removed;
}
