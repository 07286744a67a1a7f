// Tails a file named in a shell step's `logfiles` into `log` updates, as buildbot-worker's LogFileWatcher:
// it waits until the file changes from what it was at start, then polls every 2 s (and once at the end).
// Unlike buildbot-worker it never blocks: only regular files are read (a FIFO would stall the whole agent,
// /dev/zero never ends), and a fast-growing file is read a slice at a time between turns of the event loop.

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileKind } from '../fs/file-kind.js';
import { O_NONBLOCK } from '../fs/open-flags.js';
import type { LogfileSpec } from './options.js';

/** buildbot-worker polls logfiles every 2 seconds. */
export const LOGFILE_POLL_MS = 2000;
/** and reads at most 10000 bytes per read. */
const READ_SIZE = 10000;
/** Bytes read in one turn of the event loop; more waits for the next turn (setImmediate), not the next poll. */
export const LOGFILE_SLICE_BYTES = 256 * 1024;
/**
 * At the end of the step the rest of the file is read, up to its size at that moment plus this much (files
 * such as /proc ones report size 0): a writer that outlives the step cannot keep that read going. It is read
 * a slice per turn of the event loop too: a step that wrote gigabytes since the last poll blocks nothing.
 */
const FINAL_READ_SLACK_BYTES = 1024 * 1024;
/** Opening never waits (a FIFO without a writer); reading a regular file is not affected. */
const OPEN_FLAGS = fsConstants.O_RDONLY | O_NONBLOCK;

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
  private more: NodeJS.Immediate | undefined;
  /** The file is not a regular file: it was reported once and is never read. */
  private refused = false;
  private stopped = false;
  /** The final read in progress (stop()). */
  private stopping: Promise<void> | undefined;
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

  /**
   * Stops polling and reads the rest of the file, a slice per turn of the event loop; resolves once all of it
   * was passed to onData (the step's rc is sent after that, as buildbot-worker sends it after the logfiles).
   * Never rejects; calling it again returns the same promise.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.more) clearImmediate(this.more);
    this.more = undefined;
    this.stopping = this.drain().catch(() => undefined); // onData's own errors are not the watcher's
    return this.stopping;
  }

  private async drain(): Promise<void> {
    try {
      if (this.open()) {
        let left = FINAL_READ_SLACK_BYTES;
        try {
          left += Math.max(0, fstatSync(this.fd!).size - this.position);
        } catch {
          // unknown size: the slack alone
        }
        while (left > 0) {
          const want = Math.min(LOGFILE_SLICE_BYTES, left);
          const got = this.read(want);
          left -= got;
          if (got < want) break; // the end of the file
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      if (this.fd !== undefined) {
        const rest = this.decoder.decode();
        if (rest) this.onData(this.name, rest);
        try {
          closeSync(this.fd);
        } catch {
          // nothing more to read from it either way
        }
        this.fd = undefined;
      }
    }
  }

  /** One poll: opens the file once it changed, then reads one slice; the rest follows in the next turns. */
  poll(): void {
    if (this.stopped || this.more || !this.open()) return;
    if (this.read(LOGFILE_SLICE_BYTES) >= LOGFILE_SLICE_BYTES) {
      this.more = setImmediate(() => {
        this.more = undefined;
        this.poll();
      });
    }
  }

  /** True when the file is open for reading: it changed since the start and is a regular file. */
  private open(): boolean {
    if (this.fd !== undefined) return true;
    if (this.refused) return false;
    const s = stamp(this.file);
    if (s === this.oldStamp) return false; // not started yet
    if (s === null) {
      // the file was there and was deleted: the process is about to write a new one
      this.oldStamp = null;
      return false;
    }
    let fd: number;
    try {
      fd = openSync(this.file, OPEN_FLAGS);
    } catch {
      return false; // unreadable for now; try again at the next poll
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) {
        this.refused = true;
        closeSync(fd);
        this.onData(this.name, `bbagent: not reading logfile '${this.file}': it is ${fileKind(st)}, not a regular file\n`);
        return false;
      }
      this.position = this.follow ? st.size : 0;
    } catch {
      closeSync(fd);
      return false;
    }
    this.fd = fd;
    return true;
  }

  /** Reads what the file has from the current position, at most `limit` bytes; returns the bytes read. */
  private read(limit: number): number {
    const buf = Buffer.allocUnsafe(READ_SIZE);
    let total = 0;
    try {
      while (total < limit) {
        const n = readSync(this.fd!, buf, 0, Math.min(READ_SIZE, limit - total), this.position);
        if (n <= 0) break;
        this.position += n;
        total += n;
        const text = this.decoder.decode(buf.subarray(0, n), { stream: true });
        if (text) this.onData(this.name, text);
      }
    } catch {
      // unreadable for now; try again at the next poll
    }
    return total;
  }
}

/** The watchers of a step's `logfiles`, each file at path.join(workdir, filename), started and stopped together. */
export class LogfileWatchers {
  private readonly watchers: LogFileWatcher[] = [];

  /** Adds a watcher for every logfile (each notes the file's state now, to see it change). */
  watch(workdir: string, logfiles: Record<string, LogfileSpec>, onData: (name: string, text: string) => void): void {
    for (const [name, spec] of Object.entries(logfiles)) {
      const filename = typeof spec === 'string' ? spec : spec.filename;
      const follow = typeof spec === 'string' ? false : Boolean(spec.follow);
      this.watchers.push(new LogFileWatcher(name, path.join(workdir, filename), follow, onData));
    }
  }

  start(): void {
    for (const w of this.watchers) w.start();
  }

  /** Stops every watcher, then runs `then` once each has passed on the rest of its file (at once without any). */
  afterStop(then: () => void): void {
    if (this.watchers.length === 0) then();
    else void Promise.all(this.watchers.map((w) => w.stop())).then(then);
  }
}
