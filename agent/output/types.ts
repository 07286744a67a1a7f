// The output vocabulary: what a running command reports (text of a stream, a named log, a status value) and
// the units the pipeline carries to the protocol (line chunks, update items). Every floor above speaks it.

export type TextStream = 'stdout' | 'stderr' | 'header';

/** A run of whole lines: `text` ends in '\n'; `indexes` are the positions of each '\n'; `times` the arrival time of each line. */
export interface LineChunk {
  text: string;
  indexes: number[];
  times: number[];
}

export type StatusValue = number | string | boolean | null | StatusValue[] | { [k: string]: StatusValue };

/** One status item of a running command, in protocol-neutral form. */
export type UpdateItem =
  { kind: 'text'; key: TextStream; chunk: LineChunk } | { kind: 'log'; name: string; chunk: LineChunk } | { kind: 'status'; key: string; value: StatusValue };
