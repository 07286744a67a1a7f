// Shared by the service-*.test.ts files: a fake machine (recorded commands, scripted answers, chosen users).
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandResult, ServiceHost } from '../../platforms/index.js';
import type { UserInfo } from '../../platforms/service/common.js';

export interface FakeHost extends ServiceHost {
  calls: string[][];
  /** What each call got on stdin, by the index of the call. */
  inputs: (string | undefined)[];
  /** Scripted answers by "cmd arg1 arg2..." prefix; unmatched commands succeed with no output. */
  answers: Map<string, CommandResult>;
  /** Asked first: an answer computed from the call (undefined: try `answers`). */
  respond?: (cmd: string, args: string[], input: string | undefined) => CommandResult | undefined;
  privileged: boolean;
}

export const USERS: UserInfo[] = [
  { name: 'root', uid: 0, gid: 0, home: '/root' },
  { name: 'buildbot', uid: 999, gid: 995, home: '/var/lib/buildbot' },
  { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice' },
];

export function fakeHost(opts: { privileged?: boolean; uid?: number; owner?: number } = {}): FakeHost {
  const host: FakeHost = {
    calls: [],
    inputs: [],
    answers: new Map(),
    privileged: opts.privileged ?? true,
    run: async (cmd, args, runOpts) => {
      host.calls.push([cmd, ...args]);
      host.inputs.push(runOpts?.input);
      const computed = host.respond?.(cmd, args, runOpts?.input);
      if (computed) return computed;
      const line = [cmd, ...args].join(' ');
      for (const [prefix, answer] of host.answers) if (line.startsWith(prefix)) return answer;
      return { code: 0, stdout: '', stderr: '' };
    },
    isPrivileged: () => host.privileged,
    uid: () => opts.uid ?? 0,
    lookupUser: (u) => USERS.find((x) => x.name === u || x.uid === u || String(x.uid) === u),
    ownerOf: () => opts.owner ?? 999,
  };
  return host;
}

export function scratchDir(prefix: string): { root: string; basedir: string; managerDir: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  const basedir = path.join(root, 'worker dir');
  const managerDir = path.join(root, 'system');
  mkdirSync(basedir, { recursive: true });
  return { root, basedir, managerDir };
}
