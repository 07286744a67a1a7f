// Turns an error thrown by a command into the failure sent in `complete`, with Python's exception names so
// the master shows what buildbot-worker would.

import type { CommandFailure } from './types.js';

/** Python's OSError subclass for a Node errno code. */
export const ERRNO_TYPES: Record<string, string> = {
  ENOENT: 'FileNotFoundError',
  EEXIST: 'FileExistsError',
  ENOTDIR: 'NotADirectoryError',
  EISDIR: 'IsADirectoryError',
  EACCES: 'PermissionError',
  EPERM: 'PermissionError',
};

const STRERROR: Record<string, [number, string]> = {
  ENOENT: [2, 'No such file or directory'],
  EEXIST: [17, 'File exists'],
  ENOTDIR: [20, 'Not a directory'],
  EISDIR: [21, 'Is a directory'],
  EACCES: [13, 'Permission denied'],
  EPERM: [1, 'Operation not permitted'],
  ENOTEMPTY: [39, 'Directory not empty'],
  ENOSPC: [28, 'No space left on device'],
};

/** Python's str(OSError) for a Node fs error: "[Errno 2] No such file or directory: '/x'". */
export function pythonOsErrorMessage(err: NodeJS.ErrnoException): string {
  const known = err.code ? STRERROR[err.code] : undefined;
  if (!known) return err.message;
  const where = err.path ? `: '${err.path}'` : '';
  return `[Errno ${known[0]}] ${known[1]}${where}`;
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
    const type = e.pyType ?? (errno && ERRNO_TYPES[errno]) ?? (errno ? 'OSError' : 'Exception');
    const message = e.pyType || !errno ? e.message : pythonOsErrorMessage(e);
    return { type, message, traceback: stackFrames(e.stack) };
  }
  return { type: 'Exception', message: String(err), traceback: String(err) };
}
