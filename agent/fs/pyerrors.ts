// Python-shaped errors for filesystem work: the exception class, errno, strerror and str(exc) that
// buildbot-worker would have produced, so headers, rc values and failures read the same as with Python.

import { constants as osConstants } from 'node:os';
import { AgentError } from '../errors.js';
import { reprStr } from '../process/pyrepr.js';

/** glibc's strerror() texts (what Python's e.strerror holds on Linux), by errno name. */
const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  ENOEXEC: 'Exec format error',
  EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes',
  EAGAIN: 'Resource temporarily unavailable',
  EWOULDBLOCK: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  EPIPE: 'Broken pipe',
  EDOM: 'Numerical argument out of domain',
  ERANGE: 'Numerical result out of range',
  EDEADLK: 'Resource deadlock avoided',
  ENAMETOOLONG: 'File name too long',
  ENOLCK: 'No locks available',
  ENOSYS: 'Function not implemented',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  ENOMSG: 'No message of desired type',
  EIDRM: 'Identifier removed',
  ENOSTR: 'Device not a stream',
  ENODATA: 'No data available',
  ETIME: 'Timer expired',
  ENOSR: 'Out of streams resources',
  ENOLINK: 'Link has been severed',
  EPROTO: 'Protocol error',
  EMULTIHOP: 'Multihop attempted',
  EBADMSG: 'Bad message',
  EOVERFLOW: 'Value too large for defined data type',
  EILSEQ: 'Invalid or incomplete multibyte or wide character',
  ENOTSOCK: 'Socket operation on non-socket',
  EDESTADDRREQ: 'Destination address required',
  EMSGSIZE: 'Message too long',
  EPROTOTYPE: 'Protocol wrong type for socket',
  ENOPROTOOPT: 'Protocol not available',
  EPROTONOSUPPORT: 'Protocol not supported',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ENETRESET: 'Network dropped connection on reset',
  ECONNABORTED: 'Software caused connection abort',
  ECONNRESET: 'Connection reset by peer',
  ENOBUFS: 'No buffer space available',
  EISCONN: 'Transport endpoint is already connected',
  ENOTCONN: 'Transport endpoint is not connected',
  ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  EALREADY: 'Operation already in progress',
  EINPROGRESS: 'Operation now in progress',
  ESTALE: 'Stale file handle',
  EDQUOT: 'Disk quota exceeded',
  ECANCELED: 'Operation canceled',
  ESHUTDOWN: 'Cannot send after transport endpoint shutdown',
};

/** The OSError subclass Python raises for an errno (PEP 3151). */
const PY_TYPE: Record<string, string> = {
  EACCES: 'PermissionError',
  EPERM: 'PermissionError',
  EAGAIN: 'BlockingIOError',
  EWOULDBLOCK: 'BlockingIOError',
  EALREADY: 'BlockingIOError',
  EINPROGRESS: 'BlockingIOError',
  ECHILD: 'ChildProcessError',
  ECONNABORTED: 'ConnectionAbortedError',
  ECONNREFUSED: 'ConnectionRefusedError',
  ECONNRESET: 'ConnectionResetError',
  EEXIST: 'FileExistsError',
  EINTR: 'InterruptedError',
  EISDIR: 'IsADirectoryError',
  ENOENT: 'FileNotFoundError',
  ENOTDIR: 'NotADirectoryError',
  EPIPE: 'BrokenPipeError',
  ESHUTDOWN: 'BrokenPipeError',
  ESRCH: 'ProcessLookupError',
  ETIMEDOUT: 'TimeoutError',
};

/**
 * An error that fails a command with a chosen Python exception type (the caller reads `pyType`) and the
 * message Python's str(exception) would give; `code` stays stable for the agent's own logs.
 */
export class PyError extends AgentError {
  readonly pyType: string;
  constructor(pyType: string, message: string, code = 'E_PYTHON') {
    super(code, message);
    this.name = pyType;
    this.pyType = pyType;
  }
}

/** Python's OSError: str() is `[Errno n] strerror: 'filename'`. */
export class PyOSError extends PyError {
  readonly errno: number;
  readonly strerror: string;
  readonly filename: string | undefined;
  constructor(code: string, errno: number, filename?: string) {
    const strerror = strerrorOf(code, errno);
    super(
      PY_TYPE[code] ?? 'OSError',
      filename === undefined ? `[Errno ${errno}] ${strerror}` : `[Errno ${errno}] ${strerror}: ${reprStr(filename)}`,
      code, // the errno name, e.g. 'ENOENT'
    );
    this.errno = errno;
    this.strerror = strerror;
    this.filename = filename;
  }
}

function strerrorOf(code: string, errno: number): string {
  return STRERROR[code] ?? `Unknown error ${errno}`;
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

/** The positive host errno for a Node error code (Node's own `errno` field is negative on POSIX). */
export function errnoOf(code: string, fallback?: number): number {
  const n = (osConstants.errno as Record<string, number | undefined>)[code];
  if (n !== undefined) return n;
  return fallback !== undefined ? Math.abs(fallback) : 0;
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

/** What the file commands report for an OSError: ('header', '<cmd>: <strerror>: <path>') and ('rc', errno). */
export interface StatusSink {
  text(stream: 'header', text: string): void;
  status(key: string, value: number): void;
}

/**
 * buildbot-worker's `except OSError as e: sendStatus([('header', ...), ('rc', e.errno)])`. Errors Python would
 * not raise as OSError (ValueError for a NUL, bugs) are rethrown and fail the command.
 */
export function reportOSError(io: StatusSink, header: string, path: string, err: unknown): void {
  const e = toPyError(err, path);
  if (!(e instanceof PyOSError)) throw e;
  io.text('header', `${header}: ${e.strerror}: ${path}`);
  io.status('rc', e.errno);
}
