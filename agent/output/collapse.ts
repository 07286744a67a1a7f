// Collapses '\r' progress floods (buildbot issue 3517): of the states of a line rewritten with '\r', only the
// latest is kept until the next update goes out. '\r\n' is an ordinary line end.

export class ProgressCollapser {
  /** The latest state of the current progress line (held back). */
  private state = '';
  /** The current line was rewritten with '\r' since its last '\n'. */
  private rewritten = false;
  /** Part of the current line was already passed on as an ordinary partial line. */
  private passedPartial = false;
  /** The previous chunk ended in '\r': it is '\r\n' or a rewrite, depending on what comes next. */
  private pendingCR = false;

  /** Returns the text to pass on now: whole lines, partial lines, and no superseded progress state. */
  push(text: string): string {
    const t = this.pendingCR ? '\r' + text : text;
    this.pendingCR = false;
    let out = '';
    let start = 0;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c === 10) {
        out += this.takeLine(t.slice(start, i)) + '\n';
        start = i + 1;
      } else if (c === 13) {
        if (i + 1 === t.length) {
          this.append(t.slice(start, i), (s) => (out += s));
          this.pendingCR = true;
          return out;
        }
        if (t.charCodeAt(i + 1) === 10) continue; // '\r\n' ends the line at the '\n'
        this.append(t.slice(start, i), (s) => (out += s));
        // a rewrite: what was passed on of this line ends there; later states are held
        if (this.passedPartial) {
          out += '\n';
          this.passedPartial = false;
        }
        this.state = '';
        this.rewritten = true;
        start = i + 1;
      }
    }
    this.append(t.slice(start), (s) => (out += s));
    return out;
  }

  /** A progress state is held back, waiting for the next update. */
  get holding(): boolean {
    return this.rewritten && this.state !== '';
  }

  /** The latest progress state as a line, to go out with the next update; '' when there is none. */
  takeProgress(): string {
    if (!this.rewritten || this.state === '') return '';
    const line = this.state + '\n';
    this.state = '';
    return line;
  }

  /** End of stream: whatever is held. */
  flush(): string {
    const rest = this.state + (this.pendingCR ? '\r' : '');
    this.state = '';
    this.rewritten = false;
    this.pendingCR = false;
    this.passedPartial = false;
    return rest;
  }

  private append(piece: string, emit: (s: string) => void): void {
    if (this.rewritten) this.state += piece;
    else if (piece) {
      emit(piece);
      this.passedPartial = true;
    }
  }

  private takeLine(piece: string): string {
    const line = this.rewritten ? this.state + piece : piece;
    this.state = '';
    this.rewritten = false;
    this.passedPartial = false;
    return line;
  }
}
