// A snapshot of a directory tree, to show that a refused command touched nothing.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/** Every entry under `dir` (symlinks not followed) with its type, mtime and content hash: equal snapshots mean nothing was touched. */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${p} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${p}/ ${st.mtimeMs}`);
        walk(p);
      } else if (st.isFile()) out.push(`${p} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      else out.push(`${p} ${st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : 'device'} ${st.mtimeMs}`); // e.g. the agent's control socket
    }
  };
  walk(dir);
  return out;
}
