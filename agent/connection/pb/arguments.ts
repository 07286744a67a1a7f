// The arguments of the master's calls over PB as Python binds them (positional or keyword), text from Python 2
// masters' bytes, and startCommand's argument dict in the form commands read (pbutil.decode).

import { AgentError } from '../../errors.js';
import { PyTuple } from '../../py/values.js';
import { RemoteReference } from './references.js';
import { isPlainObject } from './jelly.js';

export function argError(message: string): AgentError {
  return new AgentError('E_PB_ARGS', message);
}

/** A positional-or-keyword parameter of a remote method (Python binds both ways). */
export function param(args: unknown[], kwargs: Record<string, unknown>, index: number, name: string, method: string): unknown {
  if (Object.hasOwn(kwargs, name)) return kwargs[name];
  if (index < args.length) return args[index];
  throw argError(`${method}() missing required argument: '${name}'`);
}

/** Text from the master: unicode, or bytes from Python 2 masters (buildbot_worker.pbutil.decode). */
export function textOf(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  throw argError(`${what} must be text, got ${v === null ? 'None' : typeof v}`);
}

/**
 * A value as commands read it: bytes become text (pbutil.decode converts them too) and tuples become lists, except a
 * tuple inside a list or tuple, which stays a PyTuple: Python code tells such elements apart by type (the shell
 * command's ('obfuscated', real, fake) words), while arguments and dict values are read as sequences either way.
 */
function plain(v: unknown, inSequence: boolean): unknown {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof PyTuple) {
    const items = v.items.map((x) => plain(x, true));
    return inSequence ? new PyTuple(items) : items;
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, true));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x, false);
    return out;
  }
  return v;
}

/** startCommand's args for the Worker: `writer`/`reader` removed (they travel in the channel), values as plain() makes them. */
export function commandArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if ((k === 'writer' || k === 'reader') && v instanceof RemoteReference) continue;
    out[k] = plain(v, false);
  }
  return out;
}

/** The keyword arguments of a call as a plain object, or undefined when they are not a dictionary. */
export function kwargsObject(v: unknown): Record<string, unknown> | undefined {
  if (isPlainObject(v)) return v;
  if (v instanceof Map) {
    // Python 2 peers send byte keys (flavors.Referenceable.remoteMessageReceived decodes them)
    const out: Record<string, unknown> = {};
    for (const [k, val] of v) out[Buffer.isBuffer(k) ? k.toString('utf8') : String(k)] = val;
    return out;
  }
  return undefined;
}
