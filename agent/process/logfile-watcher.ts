// Tails a file named in a shell step's `logfiles` into `log` updates, as buildbot-worker's LogFileWatcher:
// it waits until the file changes from what it was at start, then polls every 2 s (and once at the end).

import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/** buildbot-worker polls logfiles every 2 seconds. */
export const LOGFILE_POLL_MS = 2000;
/** and reads at most 10000 bytes per read. */
const READ_SIZE = 10000;

type FileStamp = string | null;

function stamp(file: string): FileStamp {
  try {
    const s = statSync(file);
    return `${Math.floor(s.ctimeMs / 1000)}:${Math.floor(s.mtimeMs / 1000)}:${s.size}`;
  } catch {
    return null;
  }
}

export class LogFileWatcher {
  private oldStamp: FileStamp;
  private fd: number | undefined;
  private position = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    readonly name: string,
    private readonly file: string,
    private readonly follow: boolean,
    private readonly onData: (name: string, text: string) => void,
  ) {
    this.oldStamp = stamp(file);
  }

  start(): void {
    this.timer = setInterval(() => this.poll(), LOGFILE_POLL_MS);
    this.timer.unref?.();
  }

  stop(): void {
    this.poll();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd !== undefined) {
      const rest = this.decoder.decode();
      if (rest) this.onData(this.name, rest);
      closeSync(this.fd);
      this.fd = undefined;
    }
  }

  poll(): void {
    try {
      if (this.fd === undefined) {
        const s = stamp(this.file);
        if (s === this.oldStamp) return; // not started yet
        if (s === null) {
          // the file was there and was deleted: the process is about to write a new one
          this.oldStamp = null;
          return;
        }
        this.fd = openSync(this.file, 'r');
        this.position = this.follow ? fstatSync(this.fd).size : 0;
      }
      const buf = Buffer.allocUnsafe(READ_SIZE);
      for (;;) {
        const n = readSync(this.fd, buf, 0, READ_SIZE, this.position);
        if (n <= 0) return;
        this.position += n;
        const text = this.decoder.decode(buf.subarray(0, n), { stream: true });
        if (text) this.onData(this.name, text);
      }
    } catch {
      // unreadable for now; try again at the next poll
    }
  }
}
