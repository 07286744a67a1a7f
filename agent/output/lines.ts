// Splits a stream of text into whole lines, as buildbot-worker's LineBoundaryFinder does (minus its bug that
// loses the middle of lines longer than max_line_length: here long lines are cut, never shortened).
// This runs on every read of a child's output, mostly in V8's unoptimised tiers on a slow step (a function
// called a few times a second never gets hot), so the common case does little: no regex pass when the text
// holds none of the characters the default newline_re needs, and no per-line strings when no line is too long.

import type { LineChunk } from './types.js';
import { DEFAULT_NEWLINE_RE_JS_SOURCE } from './newline-re.js';

/** Every match of the default newline_re holds one of these (\r, ESC, backspace). */
const DEFAULT_RE_CHARS = ['\r', '\x1b', '\x08'] as const;

export class LineBoundaryFinder {
  private partial = '';
  private partialTime = 0;
  /** The newline_re is buildbot-worker's default: text without its characters cannot match it. */
  private readonly isDefaultRe: boolean;

  constructor(
    private readonly maxLineLength: number,
    private readonly newlineRe: RegExp,
  ) {
    this.isDefaultRe = newlineRe.source === DEFAULT_NEWLINE_RE_JS_SOURCE;
  }

  /** Adds text that arrived at `time`; returns the whole lines now complete, or null. */
  append(text: string, time: number): LineChunk | null {
    const hadPartial = this.partial !== '';
    const startTime = hadPartial ? this.partialTime : time;
    let chunk: LineChunk | null;
    if (this.mayMatch(text) || (hadPartial && this.mayMatch(this.partial))) {
      this.newlineRe.lastIndex = 0;
      const all = (this.partial + text).replace(this.newlineRe, '\n');
      const whole = this.wholeLines('', all, startTime, time);
      chunk = whole !== undefined ? whole : this.cutLines(all, startTime, time);
    } else {
      // searched apart: `partial + text` would be copied into one flat string by the first search of it
      const head = this.partial;
      const whole = this.wholeLines(head, text, startTime, time);
      chunk = whole !== undefined ? whole : this.cutLines(head + text, startTime, time);
    }
    if (chunk !== null || !hadPartial) this.partialTime = time;
    return chunk;
  }

  /** At command end: the pending partial line, terminated with '\n', or null. */
  flush(): LineChunk | null {
    if (this.partial === '') return null;
    return this.append('\n', this.partialTime);
  }

  get pendingLength(): number {
    return this.partial.length;
  }

  private mayMatch(text: string): boolean {
    if (!this.isDefaultRe) return true;
    for (const c of DEFAULT_RE_CHARS) if (text.includes(c)) return true;
    return false;
  }

  /**
   * The common case, every line (and the partial one) shorter than max_line_length: the lines of `head + text`
   * (`head`, the held partial line, has no newline) are `head` and one slice of `text`. Undefined when a line
   * must be cut (cutLines does it).
   */
  private wholeLines(head: string, text: string, startTime: number, time: number): LineChunk | null | undefined {
    const max = Math.max(2, this.maxLineLength);
    const shift = head.length;
    const indexes: number[] = [];
    let first = 0; // where the current line starts, counted in head + text
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      if (nl + shift - first >= max) return undefined;
      indexes.push(nl + shift);
      first = nl + shift + 1;
      nl = text.indexOf('\n', nl + 1);
    }
    if (shift + text.length - first >= max) return undefined;
    if (indexes.length === 0) {
      this.partial = head + text;
      return null;
    }
    const cut = first - shift; // the end of the last whole line in `text`
    this.partial = cut === text.length ? '' : text.slice(cut);
    const lines = cut === text.length ? text : text.slice(0, cut);
    const times = new Array<number>(indexes.length).fill(time);
    times[0] = startTime;
    return { text: head + lines, indexes, times };
  }

  /** Lines of max_line_length or more characters become pieces of max_line_length-1 characters plus '\n'. */
  private cutLines(all: string, startTime: number, time: number): LineChunk | null {
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
    if (pieces.length === 0) return null;
    return { text: pieces.length === 1 ? pieces[0]! : pieces.join(''), indexes, times };
  }
}
