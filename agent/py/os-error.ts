// Python's OSError for errors of the operating system: the subclass, errno, strerror and str(exc) that
// buildbot-worker would have raised, made from what a Node call threw.

import { osErrnoCode } from '../errors.js';
import { errnoOf, osErrorClass, strerror } from './errno.js';
import { PyError } from './exceptions.js';
import { reprStr } from './repr.js';

/** Python's OSError: str() is `[Errno n] strerror: 'filename'`, the filename as repr() shows it. */
export class PyOSError extends PyError {
  readonly errno: number;
  readonly strerror: string;
  readonly filename: string | undefined;
  constructor(code: string, errno: number, filename?: string) {
    const text = strerror(code) ?? `Unknown error ${errno}`;
    super(
      osErrorClass(code) ?? 'OSError',
      filename === undefined ? `[Errno ${errno}] ${text}` : `[Errno ${errno}] ${text}: ${reprStr(filename)}`,
      osErrnoCode(code), // the errno name, e.g. 'ENOENT'
    );
    this.errno = errno;
    this.strerror = text;
    this.filename = filename;
  }
}

/** A Node system error (fs / child_process), as opposed to argument errors (ERR_*) and bugs. */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    typeof (err as NodeJS.ErrnoException).errno === 'number' &&
    !(err as NodeJS.ErrnoException).code!.startsWith('ERR_')
  );
}

/** Converts a Node system error into the OSError Python would raise for `filename`. */
export function toPyOSError(err: NodeJS.ErrnoException & { code: string }, filename?: string): PyOSError {
  return new PyOSError(err.code, errnoOf(err.code, err.errno), filename);
}

/**
 * Converts what a Node fs call threw into what Python would raise: system errors become OSError subclasses,
 * a NUL in a path becomes ValueError; anything else (bugs) is returned unchanged.
 */
export function toPyError(err: unknown, filename?: string): unknown {
  if (err instanceof PyError) return err; // already what Python raises (e.g. makedirs naming the failed level)
  if (isSystemError(err)) return toPyOSError(err, filename);
  if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_INVALID_ARG_VALUE' && /null bytes/.test(err.message)) {
    return new PyError('ValueError', 'embedded null byte', 'E_NUL_IN_PATH');
  }
  return err;
}

/** A new OSError for an errno name (e.g. 'ENOENT'), as Python would raise it. */
export function pyOSError(code: string, filename?: string): PyOSError {
  return new PyOSError(code, errnoOf(code), filename);
}
