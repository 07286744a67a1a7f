// The errors of a PB connection in Python's terms: what the peer answered us with (PbRemoteError), and which Python
// exception the peer sees for an error of ours (PythonError), with Twisted's own for a bad call.

import { AgentError } from '../../errors.js';
import { EXC_TAIL } from '../../py/exceptions.js';
import type { CopiedFailure } from './jelly.js';

/** The peer answered a call with an error (a PB `error` message). */
export class PbRemoteError extends AgentError {
  constructor(
    readonly method: string,
    /** The failure as sent; `remoteType` is its exception class. */
    readonly failure: CopiedFailure | undefined,
    message: string,
  ) {
    super('E_REMOTE', `master answered ${method} with an error: ${message}`);
  }

  get remoteType(): string {
    return this.failure?.type ?? '';
  }
}

/** An error that says which Python exception the peer should see (type and MRO, qualified names). */
export interface PythonError {
  pyType: string;
  pyParents: string[];
}

/** twisted.spread.flavors.NoSuchMethod: the master relies on this exact type name to fall back for old workers. */
export class NoSuchMethodError extends AgentError implements PythonError {
  readonly pyType = 'twisted.spread.flavors.NoSuchMethod';
  readonly pyParents = ['twisted.spread.flavors.NoSuchMethod', 'builtins.AttributeError', ...EXC_TAIL];
  constructor(name: string) {
    super('E_PB_NO_SUCH_METHOD', `No such method: remote_${name}`);
  }
}

/** pb.Error("Invalid Object ID"), what Twisted answers for a call to an object it does not have. */
export class InvalidObjectError extends AgentError implements PythonError {
  readonly pyType = 'twisted.spread.pb.Error';
  readonly pyParents = ['twisted.spread.pb.Error', ...EXC_TAIL];
  constructor() {
    super('E_PB_OBJECT', 'Invalid Object ID');
  }
}

function isPythonError(e: unknown): e is Error & PythonError {
  return e instanceof Error && typeof (e as Partial<PythonError>).pyType === 'string' && Array.isArray((e as Partial<PythonError>).pyParents);
}

/** The Python exception an error of ours says it is, or builtins.Exception. */
export function defaultDescribe(err: unknown): PythonError {
  if (isPythonError(err)) return { pyType: err.pyType, pyParents: err.pyParents };
  return { pyType: 'builtins.Exception', pyParents: [...EXC_TAIL] };
}
