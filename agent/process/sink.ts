// What a running process reports through, and what it hears back: the narrow end of the output pipeline a
// command hands to RunProcess (a command's CommandIO is one).

import type { TextStream } from '../output/types.js';

export interface ProcessSink {
  /** Output of the child (stdout, stderr) and the runner's own header lines. */
  text(stream: TextStream, text: string): void;
  /** A watched logfile's new content, under the log's name. */
  log(name: string, text: string): void;
  /** The command's rc. */
  status(key: 'rc', value: number): void;
  /** Milliseconds to pause reading the child's output (budget throttle, slow connection); 0: go on. */
  backpressureMs(): number;
  /** True once nothing more reaches the master (the connection went away): hang forensics are skipped. */
  abandoned?(): boolean;
}
