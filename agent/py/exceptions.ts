// Python's exception classes as the master sees them: the error the agent raises in Python's name, and the
// builtin class hierarchy (the MRO Twisted sends as a failure's `parents`).

import { AgentError, type ErrorCode } from '../errors.js';

/**
 * An error that fails a command with a chosen Python exception type (the caller reads `pyType`) and the
 * message Python's str(exception) would give; `code` stays stable for the agent's own logs.
 */
export class PyError extends AgentError {
  readonly pyType: string;
  constructor(pyType: string, message: string, code: ErrorCode = 'E_PYTHON') {
    super(code, message);
    this.name = pyType;
    this.pyType = pyType;
  }
}

/** Each builtin exception class the agent reports, with its base class (single inheritance all the way). */
const BUILTIN_PARENT: Readonly<Record<string, string>> = {
  BaseException: 'object',
  Exception: 'BaseException',
  OSError: 'Exception',
  FileNotFoundError: 'OSError',
  FileExistsError: 'OSError',
  NotADirectoryError: 'OSError',
  IsADirectoryError: 'OSError',
  PermissionError: 'OSError',
  TimeoutError: 'OSError',
  InterruptedError: 'OSError',
  BlockingIOError: 'OSError',
  ChildProcessError: 'OSError',
  ProcessLookupError: 'OSError',
  ConnectionError: 'OSError',
  BrokenPipeError: 'ConnectionError',
  ConnectionAbortedError: 'ConnectionError',
  ConnectionRefusedError: 'ConnectionError',
  ConnectionResetError: 'ConnectionError',
  ValueError: 'Exception',
  UnicodeError: 'ValueError',
  UnicodeDecodeError: 'UnicodeError',
  UnicodeEncodeError: 'UnicodeError',
  TypeError: 'Exception',
  RuntimeError: 'Exception',
  NotImplementedError: 'RuntimeError',
  AttributeError: 'Exception',
  LookupError: 'Exception',
  KeyError: 'LookupError',
  IndexError: 'LookupError',
  ArithmeticError: 'Exception',
  ZeroDivisionError: 'ArithmeticError',
};

/** The end of every exception's MRO below its own classes: what a class deriving from Exception inherits. */
export const EXC_TAIL: readonly string[] = ['builtins.Exception', 'builtins.BaseException', 'builtins.object'];

/** The builtin class names the hierarchy knows (for tests). */
export const KNOWN_BUILTINS: readonly string[] = Object.keys(BUILTIN_PARENT);

/** 'FileNotFoundError' -> 'builtins.FileNotFoundError'; qualified names stay as they are. */
export function qualifyType(type: string): string {
  return type.includes('.') ? type : `builtins.${type}`;
}

/**
 * The MRO Twisted puts in a failure's `parents`, for the exception classes our commands report. A class the
 * table does not know (a module's own, e.g. 're.error') is taken to derive from Exception directly.
 */
export function pythonParents(qualified: string): string[] {
  if (qualified.startsWith('builtins.')) {
    const out: string[] = [];
    let name: string | undefined = qualified.slice('builtins.'.length);
    if (!Object.hasOwn(BUILTIN_PARENT, name)) return [qualified, ...EXC_TAIL];
    while (name !== undefined) {
      out.push(`builtins.${name}`);
      name = Object.hasOwn(BUILTIN_PARENT, name) ? BUILTIN_PARENT[name] : undefined;
    }
    return out;
  }
  return [qualified, ...EXC_TAIL];
}
