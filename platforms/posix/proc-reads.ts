// Reads of another process's /proc/PID/environ and cmdline, one at a time for the whole agent.
// The kernel reads them under the target's memory lock: for a process hung in the kernel (a dead NFS mount, a
// page fault that never completes: the "ps hangs" case) the read never returns, and the libuv pool thread that
// makes it is lost. Node has 4 such threads, shared by fs/promises, zlib (spool, permessage-deflate) and
// dns.lookup: four lost reads would stall every builder. So at most one read is outstanding at any time, and
// while one is stuck every other read is skipped (the caller says what was skipped and why), which bounds the
// damage to one pool thread whatever the number of hung processes and scans.
//
// Why not a child process that reads and is killed at the time limit: it costs a process start per scan
// (tens of ms of CPU for another Node; no portable small tool tells which environment matched, busybox grep has
// no -z), and a read blocked in an old kernel's uninterruptible wait cannot be killed either. One thread is the
// bounded price; reads are fast (tens of microseconds), so taking them one at a time costs little.

import fs from 'node:fs';

/** What a gated read gives: the bytes, or why there are none. */
export type GatedRead =
  | { ok: true; data: Buffer }
  /** The file could not be read (the process ended, no permission). */
  | { ok: false; why: 'failed' }
  /** The read took longer than its limit: it is stuck, holding a pool thread, and the gate is closed until it returns. */
  | { ok: false; why: 'timeout' }
  /** Not tried: another read is stuck (`stuck` says which and since when). */
  | { ok: false; why: 'skipped'; stuck: string }
  /** Not tried: a read of this process got stuck before (it was hung in the kernel then). */
  | { ok: false; why: 'hung' }
  /** Not tried: the caller's deadline passed while it waited for its turn. */
  | { ok: false; why: 'late' };

/** Reads a whole file, up to `maxBytes`; rejects when it cannot. */
export type FileReader = (file: string, maxBytes: number) => Promise<Buffer>;

/** A stuck read is described by its file and how long it has been stuck. */
interface StuckRead {
  file: string;
  sinceMs: number;
}

/** Chunk size of a read (bytes): environments are usually a few KiB, so one read and one EOF read. */
const READ_CHUNK_BYTES = 64 * 1024;

/**
 * Reads a whole file, in chunks, up to `maxBytes`. A read shorter than asked is the end: environ and cmdline
 * fill whatever they are asked for (they are not seq_files), so the usual small file takes one read, not two.
 */
export const readWholeFile: FileReader = (file, maxBytes) =>
  new Promise((resolve, reject) => {
    fs.open(file, 'r', (err, fd) => {
      if (err) return reject(err);
      const chunks: Buffer[] = [];
      let total = 0;
      const finish = (e: Error | null): void => fs.close(fd, () => (e ? reject(e) : resolve(Buffer.concat(chunks))));
      const more = (): void => {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, maxBytes - total));
        fs.read(fd, buf, 0, buf.length, null, (e, n) => {
          if (e) return finish(e);
          chunks.push(buf.subarray(0, n));
          total += n;
          if (n < buf.length || total >= maxBytes) finish(null);
          else more();
        });
      };
      more();
    });
  });

export class ProcReadGate {
  /** The end of the queue: each read starts once the one before it settled or passed its limit. */
  private tail: Promise<void> = Promise.resolve();
  private stuck: StuckRead | undefined;
  /** Keys (pid:start) of processes whose read got stuck: not read again, even after it returned. */
  private readonly hung = new Set<string>();
  private readonly reader: FileReader;

  /** `reader` replaces the real file read (tests give one that never returns). */
  constructor(opts: { reader?: FileReader } = {}) {
    this.reader = opts.reader ?? readWholeFile;
  }

  /** Which read is stuck and for how long, or undefined while none is. */
  stuckRead(): string | undefined {
    const s = this.stuck;
    return s && `a read of ${s.file} has been stuck for ${((performance.now() - s.sinceMs) / 1000).toFixed(1)} s`;
  }

  /**
   * Reads `file` of the process `key` (pid:start) when its turn comes; never rejects. `deadline`
   * (performance.now() ms) skips the read when the turn comes too late.
   */
  read(key: string, file: string, opts: { maxBytes: number; timeoutMs: number; deadline?: number }): Promise<GatedRead> {
    const turn = this.tail.then(() => this.readNow(key, file, opts));
    // the next read waits for this one to settle or to pass its limit, whichever comes first
    this.tail = turn.then(() => undefined);
    return turn;
  }

  private readNow(key: string, file: string, opts: { maxBytes: number; timeoutMs: number; deadline?: number }): Promise<GatedRead> {
    const stuck = this.stuckRead();
    if (stuck) return Promise.resolve({ ok: false, why: 'skipped', stuck });
    if (this.hung.has(key)) return Promise.resolve({ ok: false, why: 'hung' });
    if (opts.deadline !== undefined && performance.now() >= opts.deadline) return Promise.resolve({ ok: false, why: 'late' });
    let reading: Promise<Buffer>;
    try {
      reading = this.reader(file, opts.maxBytes);
    } catch {
      return Promise.resolve({ ok: false, why: 'failed' });
    }
    return new Promise<GatedRead>((resolve) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        const s: StuckRead = { file, sinceMs: performance.now() - opts.timeoutMs };
        this.stuck = s;
        this.hung.add(key);
        resolve({ ok: false, why: 'timeout' });
        // the gate opens again once the read returns (the process woke up); its result is dropped
        const reopen = (): void => {
          if (this.stuck === s) this.stuck = undefined;
        };
        reading.then(reopen, reopen);
      }, opts.timeoutMs);
      reading.then(
        (data) => {
          if (late) return;
          clearTimeout(timer);
          resolve({ ok: true, data });
        },
        () => {
          if (late) return;
          clearTimeout(timer);
          resolve({ ok: false, why: 'failed' });
        },
      );
    });
  }
}

/**
 * The agent's one gate: the libuv pool is one per process, so every scanner and inspection of the process
 * shares it (tests give their own).
 */
export const agentProcReads = new ProcReadGate();

/** Says in one line which processes were not read and why (for the agent log and the hang report). */
export function describeSkipped(what: string, skipped: ReadonlyMap<string, number[]>): string | undefined {
  if (skipped.size === 0) return undefined;
  const parts: string[] = [];
  for (const [why, pids] of skipped) {
    const shown = pids.slice(0, 10).join(', ') + (pids.length > 10 ? `, ... (${pids.length} in all)` : '');
    parts.push(`pid ${shown}: ${why}`);
  }
  return `${what} not read for ${[...skipped.values()].reduce((n, l) => n + l.length, 0)} process(es): ${parts.join('; ')}`;
}

/** Adds `pid` to the list for `why`. */
export function noteSkipped(skipped: Map<string, number[]>, why: string, pid: number): void {
  const list = skipped.get(why);
  if (list) list.push(pid);
  else skipped.set(why, [pid]);
}
