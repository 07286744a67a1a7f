// Publishing a file atomically: `fill` writes a temp name, which is fsynced, renamed over the destination, and the
// directory fsynced, so a reader (or a crash) sees the old file or the whole new one; the temp name never outlives
// the call.

import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from './sync-dir.js';

export async function publishFile(tmp: string, dest: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  try {
    await fill(tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(path.dirname(dest));
}
