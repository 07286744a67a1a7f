// Turns an error thrown by a command into the failure sent in `complete`, with Python's exception names so
// the master shows what buildbot-worker would.

import { errnoOf, osErrorClass, strerror } from '../py/errno.js';
import { PyOSError } from '../py/os-error.js';
import type { CommandFailure } from './types.js';

/**
 * Python's str(OSError) for a Node system error: "[Errno 2] No such file or directory: '/x'", the path as
 * repr() shows it (CPython's OSError.__str__; Twisted sends str(value)). An errno whose strerror() the table
 * does not know keeps Node's message.
 */
export function pythonOsErrorMessage(err: NodeJS.ErrnoException): string {
  if (!err.code || strerror(err.code) === undefined) return err.message;
  return new PyOSError(err.code, errnoOf(err.code, err.errno), err.path).message;
}

/** A JS stack as Twisted prints a Failure's frames: one `file:line:function` per line. */
function stackFrames(stack: string | undefined): string {
  const frames: string[] = [];
  for (const line of (stack ?? '').split('\n')) {
    const m = /^\s+at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/.exec(line);
    if (m) frames.push(`${m[2]}:${m[3]}:${m[1] ?? '<anonymous>'}`);
  }
  return frames.join('\n');
}

export function toFailure(err: unknown): CommandFailure {
  if (err instanceof Error) {
    const e = err as NodeJS.ErrnoException & { pyType?: string };
    // Node's system errors have errno codes (ENOENT); the agent's own codes (E_COMMAND_ARGS) are not errnos
    const errno = e.code !== undefined && /^E[A-Z0-9]+$/.test(e.code) ? e.code : undefined;
    const type = e.pyType ?? (errno && osErrorClass(errno)) ?? (errno ? 'OSError' : 'Exception');
    const message = e.pyType || !errno ? e.message : pythonOsErrorMessage(e);
    return { type, message, traceback: stackFrames(e.stack) };
  }
  return { type: 'Exception', message: String(err), traceback: String(err) };
}
