// Process checks for tests.
import { readFileSync } from 'node:fs';

/** Alive and not a zombie (this sandbox's init does not reap orphans, so zombies linger). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
