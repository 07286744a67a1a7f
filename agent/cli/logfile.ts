// The agent's rotating log file (bbagent.log), rotated like Twisted's LogFile that buildbot-worker uses for
// twistd.log: before a write, once the file reached maxBytes, bbagent.log.N becomes .N+1 and bbagent.log .1.

import { closeSync, fstatSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

export interface RotatingLog {
  /** Appends one line (a newline is added). Never throws: a logger must not take the agent down. */
  write(line: string): void;
  close(): void;
}

/**
 * Opens (appending to) the log at `file`. maxBytes 0 never rotates; maxCount bounds the rotated files kept
 * (null keeps all). Writes are synchronous and unbuffered, as Twisted's, so nothing is lost when the process dies.
 */
export function openRotatingLog(file: string, maxBytes: number, maxCount: number | null): RotatingLog {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let fd: number | undefined = openSync(file, 'a');
  let size = fstatSync(fd).size;
  let reportedFailure = false;
  let closed = false;

  /** The numbers N of existing `<file>.N` (N > 0), ascending. */
  const rotatedNumbers = (): number[] =>
    readdirSync(dir)
      .filter((n) => n.startsWith(`${base}.`) && /^[0-9]+$/.test(n.slice(base.length + 1)))
      .map((n) => Number(n.slice(base.length + 1)))
      .filter((n) => n > 0)
      .sort((a, b) => a - b);

  const rotate = (): void => {
    // As Twisted: the oldest beyond maxCount are removed, the others shift up by one, then the live file is .1.
    for (const n of rotatedNumbers().reverse()) {
      if (maxCount !== null && n >= maxCount) unlinkSync(`${file}.${n}`);
      else renameSync(`${file}.${n}`, `${file}.${n + 1}`);
    }
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    renameSync(file, `${file}.1`);
  };

  const reopen = (): void => {
    if (fd === undefined) {
      fd = openSync(file, 'a');
      size = fstatSync(fd).size;
    }
  };

  const fail = (err: unknown): void => {
    // Twisted keeps logging to the old file when it cannot rotate; report the first failure once on stderr.
    if (!reportedFailure) {
      reportedFailure = true;
      process.stderr.write(`bbagent: log file ${file}: ${(err as Error).message}\n`);
    }
  };

  return {
    write(line: string): void {
      if (closed) return;
      if (maxBytes > 0 && size >= maxBytes) {
        try {
          rotate();
        } catch (err) {
          fail(err);
        }
        try {
          reopen();
        } catch (err) {
          fail(err);
          return;
        }
      }
      if (fd === undefined) return;
      const data = Buffer.from(`${line}\n`, 'utf8');
      try {
        writeSync(fd, data);
        size += data.length;
      } catch (err) {
        fail(err);
      }
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
