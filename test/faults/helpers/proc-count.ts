// Counts and cleans up the processes a test started, by a variable the test put in their environment
// (independent of the agent's own tracking marker, so the count checks the agent rather than trusting it).
import { readdirSync, readFileSync } from 'node:fs';

/** Live (non-zombie) processes whose environment holds NAME=VALUE, with their command lines. */
export function markedProcesses(name: string, value: string): { pid: number; command: string; env: string }[] {
  const needle = `${name}=${value}`;
  const out: { pid: number; command: string; env: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (!env.split('\0').includes(needle)) continue;
      out.push({ pid: Number(entry), command: readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').join(' ').trim(), env });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** SIGKILLs every process marked NAME=VALUE (a test's cleanup, whatever happened). Returns how many. */
export function killMarked(name: string, value: string): number {
  const found = markedProcesses(name, value);
  for (const p of found) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  return found.length;
}

/** Polls until no process is marked NAME=VALUE or `ms` passed; resolves with the ms it took, or undefined. */
export async function waitUnmarked(name: string, value: string, ms: number): Promise<number | undefined> {
  const t0 = Date.now();
  for (;;) {
    if (markedProcesses(name, value).length === 0) return Date.now() - t0;
    if (Date.now() - t0 > ms) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Shell text that starts, under `name`=`value` (inherited from the step), the processes a build should not
 * be able to leave behind, each tagged LEAK_KIND=kind: a setsid child (left the process group), a double-fork
 * daemon (re-parented away from the tree), a TERM-ignoring child in the group, and a TERM-ignoring daemon.
 * Each writes its pid to `<kind>.pid` in the working directory.
 */
export const LEAKY_SHELL = [
  `LEAK_KIND=setsid setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' &`,
  `(LEAK_KIND=daemon setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &)`,
  `(trap '' TERM; LEAK_KIND=noterm exec sh -c 'echo $$ > noterm.pid; exec sleep 300') &`,
  `(LEAK_KIND=noterm-daemon setsid sh -c 'trap "" TERM; echo $$ > noterm-daemon.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &)`,
  // wait until all four are up, so a test that acts on "started" finds them all
  `while [ ! -s setsid.pid ] || [ ! -s daemon.pid ] || [ ! -s noterm.pid ] || [ ! -s noterm-daemon.pid ]; do sleep 0.05; done`,
].join('\n');

/** The kinds LEAKY_SHELL starts. */
export const LEAK_KINDS = ['setsid', 'daemon', 'noterm', 'noterm-daemon'] as const;

/** The LEAK_KIND of each marked process, counted. */
export function leakCounts(name: string, value: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of markedProcesses(name, value)) {
    const kind = /(?:^|\0)LEAK_KIND=([^\0]*)/.exec(p.env)?.[1] ?? 'step';
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}
