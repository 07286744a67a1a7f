// Shared by the service-*.test.ts files: a fake machine (recorded commands, scripted answers, chosen users).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandResult, ServiceHost } from '../../platforms/index.js';
import type { UserInfo } from '../../platforms/service/common.js';
import { findExecutable } from '../../scripts/harness/process.js';

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

/** Python 3 for its strict XML parser (expat); undefined skips the tests that need it. */
export const python = findExecutable('python3');

export interface XmlNode {
  tag: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlNode[];
}

/** Parses with Python's XML parser (expat: rejects anything not well-formed) into a small tree. */
export function parseXml(bytes: Buffer | string): XmlNode {
  const script = `
import sys, json, xml.dom.minidom as m
doc = m.parseString(sys.stdin.buffer.read())
def walk(e):
    kids = [c for c in e.childNodes if c.nodeType == c.ELEMENT_NODE]
    text = ''.join(c.data for c in e.childNodes if c.nodeType == c.TEXT_NODE).strip()
    return {'tag': e.tagName, 'attrs': dict(e.attributes.items()), 'text': text, 'children': [walk(k) for k in kids]}
print(json.dumps(walk(doc.documentElement)))
`;
  const r = spawnSync(python!, ['-c', script], { input: bytes });
  if (r.status !== 0) throw new Error(`not well-formed XML: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as XmlNode;
}

/** The one child element `tag` of `n` (throws naming what is there instead). */
export function child(n: XmlNode, tag: string): XmlNode {
  const c = n.children.find((x) => x.tag === tag);
  if (!c) throw new Error(`<${n.tag}> has no <${tag}> (has ${n.children.map((x) => x.tag).join(', ')})`);
  return c;
}
