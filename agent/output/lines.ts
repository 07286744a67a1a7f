// Splits a stream of text into whole lines, as buildbot-worker's LineBoundaryFinder does (minus its bug that
// loses the middle of lines longer than max_line_length: here long lines are cut, never shortened).

import type { LineChunk } from './types.js';

export class LineBoundaryFinder {
  private partial = '';
  private partialTime = 0;

  constructor(
    private readonly maxLineLength: number,
    private readonly newlineRe: RegExp,
  ) {}

  /** Adds text that arrived at `time`; returns the whole lines now complete, or null. */
  append(text: string, time: number): LineChunk | null {
    const hadPartial = this.partial !== '';
    const startTime = hadPartial ? this.partialTime : time;
    let all = hadPartial ? this.partial + text : text;
    this.newlineRe.lastIndex = 0;
    all = all.replace(this.newlineRe, '\n');

    const pieces: string[] = [];
    const indexes: number[] = [];
    const times: number[] = [];
    let length = 0;
    let first = 0;
    const max = Math.max(2, this.maxLineLength);
    const emit = (piece: string): void => {
      pieces.push(piece);
      length += piece.length;
      indexes.push(length - 1);
      times.push(times.length === 0 ? startTime : time);
    };
    const cutLong = (end: number): void => {
      // lines of max_line_length or more characters become pieces of max_line_length-1 characters plus '\n'
      while (end - first >= max) {
        let cut = first + max - 1;
        const code = all.charCodeAt(cut - 1);
        if (code >= 0xd800 && code <= 0xdbff) cut--; // never split a surrogate pair
        emit(all.slice(first, cut) + '\n');
        first = cut;
      }
    };
    let nl = all.indexOf('\n', first);
    while (nl >= 0) {
      cutLong(nl);
      emit(all.slice(first, nl + 1));
      first = nl + 1;
      nl = all.indexOf('\n', first);
    }
    cutLong(all.length);

    this.partial = all.slice(first);
    if (pieces.length > 0 || !hadPartial) this.partialTime = time;
    if (pieces.length === 0) return null;
    return { text: pieces.length === 1 ? pieces[0]! : pieces.join(''), indexes, times };
  }

  /** At command end: the pending partial line, terminated with '\n', or null. */
  flush(): LineChunk | null {
    if (this.partial === '') return null;
    return this.append('\n', this.partialTime);
  }

  get pendingLength(): number {
    return this.partial.length;
  }
}
