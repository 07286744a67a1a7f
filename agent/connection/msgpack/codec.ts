// The msgpack_experimental_v7 envelope: one binary WebSocket message = one msgpack map with `op` and
// `seq_number`, checked against the message limits before it is decoded. Also maps protocol-neutral update
// items, status values and failures to the wire shapes the 3.7 master reads.

import { Decoder, Encoder } from '@msgpack/msgpack';
import type { CommandFailure } from '../../commands/types.js';
import type { LineChunk, UpdateItem } from '../../output/types.js';
import { AgentError } from '../../errors.js';
import { PyFloat, PyTuple } from '../../py/values.js';
import { MAX_MESSAGE_BYTES } from '../limits.js';
import { scanMessage } from './scan.js';

export type Message = Record<string, unknown> & { op: string; seq_number: number };

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({ useBigInt64: false });

export function encodeMessage(msg: Record<string, unknown>): Uint8Array {
  return encoder.encode(msg);
}

/**
 * Encodes into the encoder's own buffer, without the copy encodeMessage returns: the bytes are valid only until
 * the next encode, so only for a consumer that copies them before it returns (ws masking a frame).
 */
export function encodeMessageInPlace(msg: Record<string, unknown>): Uint8Array {
  return encoder.encodeSharedRef(msg);
}

/**
 * A message that was not decoded: undecodable, over the limits, or without a proper envelope. `op` and `seq` are
 * what could still be read of it, so that a request can be answered with an error.
 */
export class RefusedMessage extends AgentError {
  constructor(
    code: 'E_MSGPACK_DECODE' | 'E_MSGPACK_LIMIT' | 'E_MSGPACK_ENVELOPE',
    message: string,
    readonly op: string | undefined,
    readonly seq: number | undefined,
  ) {
    super(code, message);
  }
}

/** Decodes one message; throws RefusedMessage (E_MSGPACK_DECODE / E_MSGPACK_LIMIT / E_MSGPACK_ENVELOPE) naming what was wrong. */
export function decodeMessage(data: Uint8Array): Message {
  if (data.length > MAX_MESSAGE_BYTES) {
    throw new RefusedMessage('E_MSGPACK_LIMIT', `message of ${data.length} bytes is larger than ${MAX_MESSAGE_BYTES}`, undefined, undefined);
  }
  const scan = scanMessage(data);
  if (scan.error !== undefined) {
    const code = /more than|deeper than/.test(scan.error) ? 'E_MSGPACK_LIMIT' : 'E_MSGPACK_DECODE';
    throw new RefusedMessage(code, `undecodable msgpack message (${data.length} bytes): ${scan.error}`, scan.op, scan.seq);
  }
  let value: unknown;
  try {
    value = decoder.decode(data);
  } catch (err) {
    throw new RefusedMessage('E_MSGPACK_DECODE', `undecodable msgpack message (${data.length} bytes): ${(err as Error).message}`, scan.op, scan.seq);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new RefusedMessage('E_MSGPACK_ENVELOPE', 'message is not a map', undefined, undefined);
  }
  const m = value as Record<string, unknown>;
  const op = typeof m['op'] === 'string' ? m['op'] : undefined;
  const seq = typeof m['seq_number'] === 'number' && Number.isSafeInteger(m['seq_number']) ? m['seq_number'] : undefined;
  if (op === undefined) throw new RefusedMessage('E_MSGPACK_ENVELOPE', "message has no 'op'", undefined, seq);
  if (seq === undefined) throw new RefusedMessage('E_MSGPACK_ENVELOPE', `message '${op.slice(0, 100)}' has no integer 'seq_number'`, op, undefined);
  return m as Message;
}

const NONE: number[] = [];

/**
 * [key, value] pairs as in the 3.7 `update` op: text streams as [text, indexes, times], logs as [name, that].
 * `lean` sends empty index and time lists: the 3.7 master reads only the text (15% fewer bytes; a 3.7 master
 * stores such updates as it stores full ones: `leanUpdates` in docs/output.md).
 */
export function wireUpdateArgs(items: readonly UpdateItem[], lean = false): unknown[] {
  const wireChunk = (c: LineChunk): [string, number[], number[]] => (lean ? [c.text, NONE, NONE] : [c.text, c.indexes, c.times]);
  return items.map((it) => {
    switch (it.kind) {
      case 'text':
        return [it.key, wireChunk(it.chunk)];
      case 'log':
        return ['log', [it.name, wireChunk(it.chunk)]];
      case 'status':
        return [it.key, wireValue(it.value)];
    }
  });
}

/**
 * A value as msgpack carries it: msgpack has no tuples and JS numbers no floats, so a PyTuple goes as a list and a
 * PyFloat as its number (an integral one as an integer, as JS numbers always went). Values without markers are
 * returned as they are.
 */
export function wireValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof PyFloat) return v.value;
  if (v instanceof PyTuple) return v.items.map(wireValue);
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const w = wireValue(v[i]);
      if (w !== v[i]) (out ??= v.slice())[i] = w;
    }
    return out ?? v;
  }
  if (v instanceof Uint8Array || Object.getPrototypeOf(v) !== Object.prototype) return v;
  const entries = Object.entries(v);
  const wire = entries.map(([k, x]) => [k, wireValue(x)] as const);
  return wire.some(([, w], i) => w !== entries[i]![1]) ? Object.fromEntries(wire) : v;
}

/** The text msgpack carries in `complete`: str(Failure) of the Python worker, or None when the command succeeded. */
export function wireFailure(f: CommandFailure | null): string | null {
  return f === null ? null : `[Failure instance: Traceback: <class '${f.type}'>: ${f.message}\n${f.traceback}\n]`;
}
