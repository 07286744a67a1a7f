// The child's stdout and stderr on their way to the sink: decoded as UTF-8 across chunk boundaries, dropped
// where the step does not want them, and paused at the source while the output pipeline asks for it.

import { isAscii } from 'node:buffer';
import type { ProcessHandle } from '../../platforms/types.js';
import type { ProcessSink } from './sink.js';

export type ChildStream = 'stdout' | 'stderr';

export interface ChildOutputOptions {
  sink: ProcessSink;
  /** Whether each stream reaches the sink (want_stdout / want_stderr); unwanted output still counts as activity. */
  send: Record<ChildStream, boolean>;
  /** Called for every piece of output, and when a pause ends (a paused child could not write: it is not silence). */
  onActivity: () => void;
  /** True once the process ended: no more pauses. */
  ended: () => boolean;
}

export class ChildOutput {
  private handle: ProcessHandle | undefined;
  private paused = false;
  private readonly decoders: Record<ChildStream, TextDecoder> = { stdout: new TextDecoder('utf-8'), stderr: new TextDecoder('utf-8') };
  /** The stream's decoder has seen its first bytes and holds no partial character: ASCII may bypass it. */
  private readonly clean: Record<ChildStream, boolean> = { stdout: false, stderr: false };

  constructor(private readonly o: ChildOutputOptions) {}

  /** Reads the process's output from now on. */
  attach(h: ProcessHandle): void {
    this.handle = h;
    h.onStdout((d) => this.add('stdout', this.decode('stdout', d)));
    h.onStderr((d) => this.add('stderr', this.decode('stderr', d)));
  }

  /**
   * UTF-8 across chunk boundaries. A chunk of ASCII while the decoder holds nothing decodes to the same text
   * as Latin-1, which V8 makes a one-byte string of at memcpy speed (the decoder makes a two-byte one, slower
   * for every later stage); the first chunk always goes through the decoder, which drops a leading BOM.
   */
  private decode(stream: ChildStream, d: Buffer): string {
    if (this.clean[stream] && isAscii(d)) return d.toString('latin1');
    // a chunk that ends in ASCII leaves no partial character in the decoder
    this.clean[stream] = d.length > 0 && d[d.length - 1]! < 0x80;
    return this.decoders[stream].decode(d, { stream: true });
  }

  /** Passes on what the decoders still hold (an incomplete character at the end becomes U+FFFD). */
  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const tail = this.decoders[stream].decode();
      if (tail) this.add(stream, tail);
    }
  }

  /** One piece of output of `stream` (also the runner's own text written as the child's, e.g. a failed exec). */
  add(stream: ChildStream, text: string): void {
    if (!text) return;
    if (this.o.send[stream]) this.o.sink.text(stream, text);
    this.o.onActivity();
    this.maybePause();
  }

  /** Pauses reading the child's output while the output pipeline asks for it (throttle budget, slow link). */
  private maybePause(): void {
    if (this.paused || !this.handle || this.o.ended()) return;
    const wait = this.o.sink.backpressureMs();
    if (wait <= 0) return;
    this.paused = true;
    this.handle.pause();
    setTimeout(() => {
      this.paused = false;
      if (this.o.ended() || !this.handle) return;
      this.handle.resume();
      this.o.onActivity();
      this.maybePause();
    }, wait);
  }
}
