// What the spool and secret fault tests share: a master-side probe of the worker info the master received,
// the time the master stored for a step's end, the build processes of an agent, and the loop-stall check.
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import type { BuildbotMaster } from '../../../scripts/harness/master.js';

/**
 * master.cfg preamble: a step writing to an 'info' log, as JSON, the worker info the master keeps for the
 * worker (worker.info), the environment it was told about (worker_environ), and the Python type of each value.
 */
export const INFO_PROBE_PREAMBLE = String.raw`
from buildbot.process import buildstep
from twisted.internet import defer

class ReceivedInfoProbe(buildstep.BuildStep):
    @defer.inlineCallbacks
    def run(self):
        import json
        worker = self.build.workerforbuilder.worker
        info = {k: worker.info.getProperty(k) for k in worker.info.properties}
        yield self.addCompleteLog('info', json.dumps({
            'info': info,
            'types': {k: type(v).__name__ for k, v in info.items()},
            'environ': worker.worker_environ,
        }, sort_keys=True, default=str))
        return 0
`;

export interface ReceivedInfo {
  info: Record<string, unknown>;
  types: Record<string, string>;
  environ: Record<string, string>;
}

/** Fills the filesystem of `dir` with `file` until it is full (ENOSPC); returns the bytes written. */
export function fillUp(file: string): number {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 0x5a);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

/** The step's `complete_at` as the master stored it (whole seconds, truncated: Buildbot's column is an integer). */
export async function stepCompleteAt(master: BuildbotMaster, stepid: number): Promise<number> {
  const { steps } = await master.get<{ steps: { complete_at: number | null }[] }>(`/steps/${stepid}`);
  const at = steps[0]?.complete_at;
  if (typeof at !== 'number') throw new Error(`step ${stepid} has no complete_at`);
  return at;
}

/** Pids of every live descendant of `root` (build processes of an agent), from /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/** The longest event-loop stall the agent logged (agent/loop-monitor.ts), 0 if none. */
export function longestLoopStallMs(agentOutput: string): number {
  return Math.max(0, ...[...agentOutput.matchAll(/event loop blocked for (\d+) ms/g)].map((m) => Number(m[1])));
}
