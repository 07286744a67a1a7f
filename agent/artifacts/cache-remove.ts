// Removing an entry or a leftover whatever its modes: an extracted tree keeps the archive's modes, and a
// directory without write permission (0o555, common in release archives) stops a plain recursive rm for any
// user but root. On EACCES/EPERM the directories under `p` are made writable and the removal tried again.

import { chmod, lstat, opendir, rm } from 'node:fs/promises';
import path from 'node:path';

async function makeDirsWritable(p: string): Promise<void> {
  const pending = [p];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    await chmod(dir, 0o700).catch(() => undefined);
    const handle = await opendir(dir).catch(() => undefined);
    if (!handle) continue;
    for await (const d of handle) if (d.isDirectory()) pending.push(path.join(dir, d.name));
  }
}

/** rm -rf that also removes trees with read-only directories; a missing `p` is not an error. */
export async function removeAll(p: string): Promise<void> {
  try {
    await rm(p, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await makeDirsWritable(p);
    await rm(p, { recursive: true, force: true });
  }
}
