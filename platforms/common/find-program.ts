// The program search of a shell (which / where): the first executable file named `name` plus one of the
// extensions, in the directories of PATH. Each platform says how PATH is split and which extensions count.

import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import * as nodePath from 'node:path';

/** Whether `p` is a file this process may execute (on Windows, X_OK means no more than that it exists). */
function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first `dir/name+ext` that is an executable file, directories first, extensions in order; empty dirs skipped. */
export function searchPath(name: string, dirs: readonly string[], exts: readonly string[], isExecutable = isExecutableFile): string | null {
  for (const dir of dirs) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = nodePath.join(dir, name + ext);
      if (isExecutable(p)) return p;
    }
  }
  return null;
}
