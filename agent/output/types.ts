// The output vocabulary: what a running command reports (text of a stream, a named log, a status value) and
// the units the pipeline carries to the protocol (line chunks, update items). Every floor above speaks it.

import type { PyFloat, PyTuple } from '../py/values.js';

export type TextStream = 'stdout' | 'stderr' | 'header';

/** A run of whole lines: `text` ends in '\n'; `indexes` are the positions of each '\n'; `times` the arrival time of each line. */
export interface LineChunk {
  text: string;
  indexes: number[];
  times: number[];
}

/**
 * A status value as Python would send it: a PyFloat or PyTuple (agent/py/values.ts) where Python has a float or a
 * tuple and JS could not tell (each protocol encodes them as it can: PB keeps them apart, msgpack cannot).
 */
export type StatusValue = number | string | boolean | null | PyFloat | PyTuple | StatusValue[] | { [k: string]: StatusValue };

/** One status item of a running command, in protocol-neutral form. */
export type UpdateItem =
  { kind: 'text'; key: TextStream; chunk: LineChunk } | { kind: 'log'; name: string; chunk: LineChunk } | { kind: 'status'; key: string; value: StatusValue };
