// Buildbot's objects over PB (buildbot_worker/pb.py): the worker "Worker" (the login mind) and one object per
// builder, translated into calls on the protocol-neutral Worker; and, per command, a CommandChannel that talks to
// the master's RemoteCommand / FileWriter / FileReader references and releases them when the command is done.

import type { CommandChannel, CommandFailure, RemoteReader, RemoteWriter } from '../../commands/types.js';
import type { UpdateItem } from '../../output/types.js';
import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Worker } from '../../worker/worker.js';
import { SIZE_LIMIT } from './banana.js';
import { ConnectionLostError } from '../errors.js';
import { Referenceable, RemoteReference, type PythonError } from './broker.js';
import { PyFloat, PyTuple } from '../../py/values.js';
import { CopyableFailure, isPlainObject } from './jelly.js';
import { ERRNO_TYPES } from '../../commands/failure.js';

/**
 * Largest byte string we put in one call: under Banana's 640 KiB with room to spare. The master would refuse
 * more (BananaError drops the connection), so bigger file blocks and texts go in several calls.
 */
export const MAX_PAYLOAD = SIZE_LIMIT - 128 * 1024;

// ---- Python exception names, so the master sees what buildbot-worker would send ----

const BUILTIN_PARENT: Record<string, string> = {
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

const EXC_TAIL = ['builtins.Exception', 'builtins.BaseException', 'builtins.object'];

/** 'FileNotFoundError' -> 'builtins.FileNotFoundError'; qualified names stay as they are. */
export function qualifyType(type: string): string {
  return type.includes('.') ? type : `builtins.${type}`;
}

/** The MRO Twisted puts in a failure's `parents`, for the exception classes our commands report. */
export function pythonParents(qualified: string): string[] {
  if (qualified.startsWith('builtins.')) {
    const out: string[] = [];
    let name: string | undefined = qualified.slice('builtins.'.length);
    if (BUILTIN_PARENT[name] === undefined) return [qualified, ...EXC_TAIL];
    while (name !== undefined) {
      out.push(`builtins.${name}`);
      name = BUILTIN_PARENT[name];
    }
    return out;
  }
  return [qualified, ...EXC_TAIL];
}

function py(type: string, ...parents: string[]): PythonError {
  return { pyType: type, pyParents: [type, ...parents, ...EXC_TAIL] };
}

/** Which Python exception the master sees for an error our methods threw (error answers). */
export function describePbError(err: unknown): PythonError {
  const e = err as Partial<PythonError> & { code?: unknown; pyType?: unknown };
  if (typeof e?.pyType === 'string') {
    const q = qualifyType(e.pyType);
    return Array.isArray(e.pyParents) ? { pyType: q, pyParents: e.pyParents } : { pyType: q, pyParents: pythonParents(q) };
  }
  switch (err instanceof AgentError ? err.code : undefined) {
    case 'E_UNKNOWN_COMMAND':
      // buildbot_worker.base.UnknownCommand(pb.Error), as in the capture of startCommand('bogus')
      return py('buildbot_worker.base.UnknownCommand', 'twisted.spread.pb.Error');
    case 'E_COMMAND_ARGS':
      // Command.setup raises ValueError("... is missing args: ...")
      return { pyType: 'builtins.ValueError', pyParents: pythonParents('builtins.ValueError') };
    case 'E_PB_ARGS':
      return { pyType: 'builtins.TypeError', pyParents: pythonParents('builtins.TypeError') };
    case 'E_JELLY':
      return py('twisted.spread.jelly.InsecureJelly');
    default:
      break;
  }
  if (typeof e?.code === 'string' && ERRNO_TYPES[e.code]) {
    const q = `builtins.${ERRNO_TYPES[e.code]}`;
    return { pyType: q, pyParents: pythonParents(q) };
  }
  return { pyType: 'builtins.RuntimeError', pyParents: pythonParents('builtins.RuntimeError') };
}

/** "file:line:function" frames (commands/failure.ts) as a Python traceback, which the master shows. */
function formatTraceback(f: CommandFailure, qualified: string): string {
  const frames = f.traceback
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(.*):(\d+):(.*)$/.exec(l);
      return m ? `  File "${m[1]}", line ${m[2]}, in ${m[3]}` : `  ${l}`;
    });
  return `Traceback (most recent call last):\n${frames.length ? `${frames.join('\n')}\n` : ''}${qualified}: ${f.message}\n`;
}

/** The failure `complete` carries: a CopyableFailure as a deferred's errback sends it (pickled, with traceback). */
export function completeFailure(f: CommandFailure): CopyableFailure {
  const type = qualifyType(f.type);
  return new CopyableFailure({
    type,
    value: f.message,
    traceback: formatTraceback(f, type),
    parents: pythonParents(type),
    unsafeTracebacks: true,
    pickled: true,
  });
}

// ---- arguments ----

function argError(message: string): AgentError {
  return new AgentError('E_PB_ARGS', message);
}

/** A positional-or-keyword parameter of a remote method (Python binds both ways). */
function param(args: unknown[], kwargs: Record<string, unknown>, index: number, name: string, method: string): unknown {
  if (Object.hasOwn(kwargs, name)) return kwargs[name];
  if (index < args.length) return args[index];
  throw argError(`${method}() missing required argument: '${name}'`);
}

/** Text from the master: unicode, or bytes from Python 2 masters (buildbot_worker.pbutil.decode). */
function textOf(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  throw argError(`${what} must be text, got ${v === null ? 'None' : typeof v}`);
}

/** Bytes become text and tuples become lists, as commands expect them (pbutil.decode converts bytes too). */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof PyTuple) return v.items.map(plain);
  if (Array.isArray(v)) return v.map(plain);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x);
    return out;
  }
  return v;
}

/**
 * startCommand's args for the Worker: `writer`/`reader` removed (they travel in the channel), bytes decoded, tuples
 * turned into lists, except the elements of `command`, where ('obfuscated', real, fake) must stay a tuple
 * (the shell command tells them from plain words that way, as buildbot-worker's runprocess does).
 */
export function commandArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if ((k === 'writer' || k === 'reader') && v instanceof RemoteReference) continue;
    if (k === 'command' && (Array.isArray(v) || v instanceof PyTuple)) {
      const items = v instanceof PyTuple ? v.items : v;
      out[k] = items.map((w: unknown) => (w instanceof PyTuple ? new PyTuple(w.items.map(plain)) : plain(w)));
    } else {
      out[k] = plain(v);
    }
  }
  return out;
}

// ---- updates ----

/** Cuts text whose UTF-8 form exceeds MAX_PAYLOAD (the PB master re-splits lines itself, so any cut is fine). */
export function splitText(text: string, limit = MAX_PAYLOAD): string[] {
  if (text.length * 3 <= limit || Buffer.byteLength(text, 'utf8') <= limit) return [text];
  const out: string[] = [];
  const step = Math.max(2, Math.floor(limit / 3));
  let i = 0;
  while (i < text.length) {
    let end = Math.min(text.length, i + step);
    // never cut a surrogate pair
    const c = text.charCodeAt(end - 1);
    if (end < text.length && c >= 0xd800 && c <= 0xdbff) end--;
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

/** The `{key: value}` dicts for one item: ProtocolCommandPb.protocol_send_update_message sends text only. */
export function updateDicts(item: UpdateItem): Record<string, unknown>[] {
  switch (item.kind) {
    case 'text':
      return splitText(item.chunk.text).map((t) => ({ [item.key]: t }));
    case 'log':
      return splitText(item.chunk.text).map((t) => ({ log: new PyTuple([item.name, t]) }));
    case 'status':
      // PyFloat and PyTuple values jelly as Python's float and tuple: the master stores what it gets
      return [{ [item.key]: item.value }];
  }
}

// ---- one command's link to the master ----

/** The master-side references of one running command, and the channel the command reports through. */
class CommandLink {
  private completion: Promise<void> | undefined;

  constructor(
    private readonly ref: RemoteReference,
    private readonly writerRef: RemoteReference | undefined,
    private readonly readerRef: RemoteReference | undefined,
    private readonly what: string,
    private readonly logger: Logger,
    private readonly backlog?: () => number,
  ) {}

  private logFailure(call: string): (err: unknown) => void {
    return (err) => {
      if (!(err instanceof ConnectionLostError)) this.logger.warn(`${this.what}: ${call} failed: ${errorMessage(err)}`);
    };
  }

  channel(): CommandChannel {
    const ref = this.ref;
    const w = this.writerRef;
    const r = this.readerRef;
    const writer: RemoteWriter | undefined = w && {
      write: async (data) => {
        // raw bytes; a block beyond Banana's limit goes in pieces, each acknowledged before the next
        const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        if (bytes.length <= MAX_PAYLOAD) {
          await w.callRemote('write', bytes);
          return;
        }
        for (let off = 0; off < bytes.length; off += MAX_PAYLOAD) await w.callRemote('write', bytes.subarray(off, off + MAX_PAYLOAD));
      },
      close: async () => {
        await w.callRemote('close');
      },
      utime: async (atime, mtime) => {
        await w.callRemote('utime', new PyTuple([new PyFloat(atime), new PyFloat(mtime)]));
      },
      unpack: async () => {
        await w.callRemote('unpack');
      },
    };
    const reader: RemoteReader | undefined = r && {
      read: async (length) => {
        // the master answers with up to `length` bytes, which must fit in one Banana string
        const v = await r.callRemote('read', Math.min(length, MAX_PAYLOAD));
        if (v === null || v === undefined) return null;
        if (Buffer.isBuffer(v)) return v;
        // a closed master-side file answers unicode '' (spec §11.4): text counts as its UTF-8 bytes
        if (typeof v === 'string') return Buffer.from(v, 'utf8');
        throw new AgentError('E_PB_READ', `master answered read with ${typeof v}, not bytes`);
      },
      close: async () => {
        await r.callRemote('close');
      },
    };
    return {
      sendUpdate: (items: UpdateItem[]) => {
        // One call per batch: the master's remote_update takes a list of [dict, num] (buildbot-worker sends one
        // call per item, and every call costs the master a Banana message, a Jelly tree and a Deferred chain).
        // Not awaited, as the Python worker pipelines them; failures are only logged.
        const entries = items.flatMap((item) => updateDicts(item).map((d) => [d, 0]));
        if (entries.length) ref.callRemote('update', entries).catch(this.logFailure('update'));
      },
      complete: (failure: CommandFailure | null) => {
        this.completion = ref.callRemote('complete', failure ? completeFailure(failure) : null).then(() => undefined, this.logFailure('complete'));
        return Promise.resolve();
      },
      // the master handed the writer of the right kind (FileWriter or DirectoryWriter): its methods are the same
      writer: () => writer,
      reader,
      ...(this.backlog ? { backlog: this.backlog } : {}),
      // PB sends only the text of lines
      textOnly: true,
    };
  }

  /** The command is over: once `complete` was answered (or never sent), release the master's objects. */
  async finish(): Promise<void> {
    await this.completion;
    this.ref.release();
    this.writerRef?.release();
    this.readerRef?.release();
  }
}

// ---- the worker's objects ----

export interface PbWorkerOptions {
  worker: Worker;
  logger: Logger;
  /** Bytes written to the connection and not yet sent (output backpressure). */
  backlog?: () => number;
}

/** The objects one PB connection exposes: the Worker (login mind) and the builders it hands out. */
export class PbWorker {
  readonly mind: Referenceable;
  private readonly builders = new Map<string, Referenceable>();

  constructor(private readonly opts: PbWorkerOptions) {
    const { worker } = opts;
    this.mind = new Referenceable('worker', {
      print: (args, kw) => {
        worker.print(textOf(param(args, kw, 0, 'message', 'print'), 'message'));
        return null;
      },
      getWorkerInfo: () => worker.workerInfo(),
      setBuilderList: (args, kw) => this.setBuilderList(param(args, kw, 0, 'wanted', 'setBuilderList')),
      getCommands: () => worker.commandVersions(),
      getVersion: () => worker.version,
      shutdown: () => {
        // answer first, then stop (buildbot-worker stops its reactor 0.2 s later, without a goodbye)
        setImmediate(() => worker.shutdown());
        return null;
      },
    });
  }

  private setBuilderList(wanted: unknown): Record<string, Referenceable> {
    const list = wanted instanceof PyTuple ? wanted.items : Array.isArray(wanted) ? wanted : undefined;
    if (!list) throw argError('setBuilderList() wants a list of (name, builddir) pairs');
    const pairs = list.map((p: unknown): [string, string] => {
      const items = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : [];
      if (items.length !== 2) throw argError('setBuilderList() wants (name, builddir) pairs');
      return [textOf(items[0], 'builder name'), textOf(items[1], 'builddir')];
    });
    const names = this.opts.worker.setBuilderList(pairs);
    const keep = new Set(names);
    // builders no longer wanted are forgotten here; the master releases its references to them
    for (const name of [...this.builders.keys()]) if (!keep.has(name)) this.builders.delete(name);
    const out: Record<string, Referenceable> = {};
    for (const name of names) {
      let b = this.builders.get(name);
      if (!b) {
        b = this.builder(name);
        this.builders.set(name, b);
      }
      out[name] = b;
    }
    return out;
  }

  /** WorkerForBuilderPb: what the master calls for one builder. */
  private builder(name: string): Referenceable {
    const { worker, logger } = this.opts;
    return new Referenceable(`builder ${name}`, {
      startBuild: () => null,
      startCommand: (args, kw) => {
        const ref = param(args, kw, 0, 'command_ref', 'startCommand');
        const stepId = textOf(param(args, kw, 1, 'stepId', 'startCommand'), 'stepId');
        const command = textOf(param(args, kw, 2, 'command', 'startCommand'), 'command');
        const cmdArgs = param(args, kw, 3, 'args', 'startCommand');
        if (!(ref instanceof RemoteReference)) throw argError('startCommand(): command_ref is not a remote reference');
        if (!isPlainObject(cmdArgs)) throw argError(`startCommand ${command}: args is not a dictionary`);
        const writerRef = cmdArgs['writer'] instanceof RemoteReference ? cmdArgs['writer'] : undefined;
        const readerRef = cmdArgs['reader'] instanceof RemoteReference ? cmdArgs['reader'] : undefined;
        const link = new CommandLink(ref, writerRef, readerRef, `command ${command} (${stepId}) on builder ${name}`, logger, this.opts.backlog);
        // throws synchronously for an unknown command or missing args: the master gets an error answer,
        // and the broker releases the references we did not keep
        const done = worker.startCommand(command, stepId, commandArgs(cmdArgs), link.channel(), { builder: name });
        ref.keep();
        writerRef?.keep();
        readerRef?.keep();
        done
          .catch((err: unknown) => logger.warn(`command ${command} (${stepId}) failed: ${errorMessage(err)}`))
          .then(() => link.finish())
          .catch((err: unknown) => logger.warn(`command ${command} (${stepId}): ${errorMessage(err)}`));
        return null;
      },
      interruptCommand: (args, kw) => {
        param(args, kw, 0, 'stepId', 'interruptCommand');
        const why = param(args, kw, 1, 'why', 'interruptCommand');
        worker.interruptBuilderCommand(name, typeof why === 'string' || Buffer.isBuffer(why) ? textOf(why, 'why') : String(why));
        return null;
      },
      print: (args, kw) => {
        logger.info(`builder ${name}: message from master: ${textOf(param(args, kw, 0, 'message', 'print'), 'message')}`);
        return null;
      },
      // legacy: masters before 0.9 handed the builder a reference; 3.7 never calls it
      setMaster: () => null,
    });
  }
}
