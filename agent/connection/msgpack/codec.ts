// The msgpack_experimental_v7 envelope: one binary WebSocket message = one msgpack map with `op` and
// `seq_number`. Also maps protocol-neutral update items to the wire shapes the 3.7 master reads.

import { Decoder, Encoder } from '@msgpack/msgpack';
import type { CommandFailure, LineChunk, UpdateItem } from '../../commands/types.js';
import { failureText } from '../../commands/failure.js';
import { AgentError } from '../../errors.js';

export type Message = Record<string, unknown> & { op: string; seq_number: number };

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({ useBigInt64: false });

export function encodeMessage(msg: Record<string, unknown>): Uint8Array {
  return encoder.encode(msg);
}

/** Decodes one message; throws AgentError (E_MSGPACK_DECODE / E_MSGPACK_ENVELOPE) naming what was wrong. */
export function decodeMessage(data: Uint8Array): Message {
  let value: unknown;
  try {
    value = decoder.decode(data);
  } catch (err) {
    throw new AgentError('E_MSGPACK_DECODE', `undecodable msgpack message (${data.length} bytes): ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentError('E_MSGPACK_ENVELOPE', 'message is not a map');
  }
  const m = value as Record<string, unknown>;
  if (typeof m['op'] !== 'string') throw new AgentError('E_MSGPACK_ENVELOPE', "message has no 'op'");
  if (typeof m['seq_number'] !== 'number') throw new AgentError('E_MSGPACK_ENVELOPE', `message '${m['op']}' has no 'seq_number'`);
  return m as Message;
}

const NONE: number[] = [];

/**
 * [key, value] pairs as in the 3.7 `update` op: text streams as [text, indexes, times], logs as [name, that].
 * `lean` sends empty index and time lists: the 3.7 master reads only the text (15% fewer bytes; see
 * ../shared/protocol/msgpack-protocol.md 6.2, where a probe showed empty lists are accepted).
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
        return [it.key, it.value];
    }
  });
}

export function wireFailure(f: CommandFailure | null): string | null {
  return f === null ? null : failureText(f);
}
