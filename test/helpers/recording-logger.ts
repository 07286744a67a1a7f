// A Logger that keeps every line ("info ...", "warn ...", "error ..."), for tests that check what was logged.
import type { Logger } from '../../agent/log.js';

export class RecordingLogger implements Logger {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`info ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`warn ${m}`);
  }
  error(m: string): void {
    this.lines.push(`error ${m}`);
  }
  debug(): void {}
}
