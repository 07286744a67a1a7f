// fsync of a directory, so that a rename into it survives a power loss. Best effort: some systems (Windows)
// cannot open a directory; the rename is atomic all the same, only its durability is then left to the OS.

import { constants as fsConstants, type PathLike } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

export async function syncDir(dir: PathLike): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, fsConstants.O_RDONLY);
    await fh.sync();
  } catch {
    // EISDIR / EPERM / EINVAL where directories cannot be opened or synced
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
