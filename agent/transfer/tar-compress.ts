// Compression of the tar stream: 'w|gz' with node's zlib, 'w|bz2' through the bzip2 program (node has no bzip2).

import { spawn } from 'node:child_process';
import { Readable, pipeline } from 'node:stream';
import { PyError } from '../py/exceptions.js';

/** A byte stream that `return()` stops early, releasing its files and processes (tar.ts's TarStream). */
type ChunkStream = AsyncGenerator<Buffer, void, undefined>;

/** 'w|gz': one gzip member, as Python's tarfile stream mode reads it. */
export async function* gzipStream(tar: ChunkStream): ChunkStream {
  // zlib loads at the first compressed upload: a worker that never makes one does not page it in
  const { createGzip } = await import('node:zlib');
  const gz = createGzip();
  // Readable.from closes the generator (open files) when the pipeline is torn down early
  pipeline(Readable.from(tar, { objectMode: false }), gz, () => {
    // errors reach the consumer through gz; an early stop makes this report a premature close
  });
  try {
    for await (const chunk of gz) yield chunk as Buffer;
  } finally {
    gz.destroy();
  }
}

/** 'w|bz2': node has no bzip2, so the archive goes through `bzip2 -c`. */
export async function* bzip2Stream(tar: ChunkStream, exe: string, environ: Record<string, string | undefined>): ChunkStream {
  const child = spawn(exe, ['-c'], { stdio: ['pipe', 'pipe', 'pipe'], env: environ, windowsHide: true });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 64) stderr.push(c);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let feedError: unknown = null;
  let done = false;
  pipeline(Readable.from(tar, { objectMode: false }), child.stdin, (err) => {
    if (err && !done) {
      feedError = err;
      // a failed archive must not reach the master as a shorter, valid-looking bz2 stream
      child.kill();
    }
  });
  try {
    for await (const chunk of child.stdout) {
      if (feedError) throw feedError;
      yield chunk as Buffer;
    }
    const res = await exited;
    done = true;
    if (feedError) throw feedError;
    if (res.error) throw new PyError('OSError', `bzip2 could not run: ${res.error.message}`, 'E_BZIP2');
    if (res.code !== 0) {
      const msg = Buffer.concat(stderr).toString('utf8').trim();
      throw new PyError('OSError', `bzip2 failed (${res.signal ?? `exit code ${res.code}`})${msg ? `: ${msg}` : ''}`, 'E_BZIP2');
    }
  } finally {
    if (!done) {
      done = true;
      child.stdin.destroy();
      child.stdout.destroy();
      child.kill();
    }
  }
}
