// The text buildbot-worker's RunProcess writes into a step's header stream before the command runs (command,
// dir and timers, watched logfiles, argv, environment, stdin, PTY) and when its exec fails, so a step's log
// reads the same with either worker.

import { reprBytes, reprValue } from '../py/repr.js';
import { shellQuote } from '../py/shlex.js';
import type { RunProcessOptions } from './options.js';

/** Seconds as Python's str() shows them in headers ("inf" for Infinity). */
export const secs = (v: number): string => (Number.isFinite(v) ? String(v) : 'inf');

/** The displayed command as buildbot-worker's messages show it: b'...' for a shell string, [b'...', ...] for an argv. */
export function commandRepr(fake: string | string[]): string {
  return typeof fake === 'string' ? reprBytes(fake) : `[${fake.map(reprBytes).join(', ')}]`;
}

/** The header texts before the process starts, in order; each is sent on its own, as buildbot-worker does. */
export function startHeaders(o: RunProcessOptions, env: Record<string, string>, usePTY: boolean, stdinBytes: Buffer | undefined): string[] {
  const fake = o.fakeCommand ?? o.command;
  const out = [(typeof fake === 'string' ? fake : shellQuote(fake)) + '\n'];
  let msg = ` in dir ${o.workdir}`;
  if (o.timeout) msg += ` (timeout ${secs(o.timeout)} ${o.timeout === 1 ? 'sec' : 'secs'})`;
  if (o.maxTime) msg += ` (maxTime ${secs(o.maxTime)} ${o.maxTime === 1 ? 'sec' : 'secs'})`;
  out.push(msg + '\n');
  out.push(` watching logfiles ${reprValue(o.logfiles)}\n`);
  out.push(` argv: ${commandRepr(fake)}\n`);
  if (o.logEnviron) {
    let e = ' environment:\n';
    for (const k of Object.keys(env).sort()) e += `  ${k}=${env[k]}\n`;
    out.push(e);
  }
  if (stdinBytes) out.push(` writing ${stdinBytes.length} bytes to stdin\n`);
  out.push(` using PTY: ${usePTY ? 'True' : 'False'}\n`);
  return out;
}

/**
 * What Twisted's forked child writes to stderr when its exec fails (the agent has no fork: it writes the same),
 * with the Python exception `pyType` and its str() `message`.
 */
export function execFailedText(argv: string[], pyType: string, message: string): string {
  return (
    `Upon execvpe ${argv[0]} ${reprValue(argv)} in environment id 0\n:Traceback (most recent call last):\n` +
    `  File "bbagent", in spawn\n${pyType}: ${message}\n`
  );
}
