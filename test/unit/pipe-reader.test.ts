// Reading a child's pipes into one reused buffer (platforms/posix/pipe-reader.ts): every byte arrives, in
// order, on both pipes, with the buffer reused between reads; child_process still sees its stdio close; pause
// stops reading until resume; and the stream fallback gives the same bytes.

import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { posixSpawn } from '../../platforms/posix/spawn.js';
import { readPipe } from '../../platforms/posix/pipe-reader.js';

const posix = process.platform !== 'win32';

/** A shell writing `n` distinct 20 KiB pieces to stdout (and a short line per piece to stderr), each in its own write. */
const WRITER = `i=0; line=$(printf '%0100d' 0); block=""; j=0; while [ $j -lt 200 ]; do block="$block$line"; j=$((j+1)); done
while [ $i -lt $0 ]; do printf '%06d%s\\n' $i "$block"; printf 'err %d\\n' $i >&2; i=$((i+1)); done`;

function expected(n: number): { out: string; err: string } {
  const block = '0'.repeat(100 * 200);
  let out = '';
  let err = '';
  for (let i = 0; i < n; i++) {
    out += `${String(i).padStart(6, '0')}${block}\n`;
    err += `err ${i}\n`;
  }
  return { out, err };
}

describe.runIf(posix)('reading child pipes into one buffer', () => {
  for (const direct of [true, false]) {
    it(`${direct ? 'direct reads' : 'the stream fallback'}: every byte of both pipes, in order; child_process's close still fires`, async () => {
      const child = spawn('/bin/sh', ['-c', WRITER, '40'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const seen = new Set<ArrayBufferLike>();
      let closes = 0;
      const allClosed = new Promise<void>((resolve) => {
        const closed = (): void => {
          if (++closes === 2) resolve();
        };
        readPipe(child.stdout, (d) => (seen.add(d.buffer), out.push(Buffer.from(d))), closed, direct);
        readPipe(child.stderr, (d) => (seen.add(d.buffer), err.push(Buffer.from(d))), closed, direct);
      });
      const cpClose = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      await allClosed;
      expect(await cpClose).toBe(0);
      const want = expected(40);
      expect(Buffer.concat(out).toString('latin1')).toBe(want.out);
      expect(Buffer.concat(err).toString('latin1')).toBe(want.err);
      // direct reads land in one reused buffer; the stream's reads each bring their own
      if (direct) expect(seen.size).toBe(1);
      else expect(seen.size).toBeGreaterThan(1);
    });
  }

  it('pause stops reading (the writer blocks on the full pipe) until resume; the end is reported once exit and both pipes are done', async () => {
    const handle = posixSpawn({ argv: ['/bin/sh', '-c', WRITER, '30'], cwd: process.cwd(), env: { PATH: '/usr/bin:/bin' }, pty: false, stdinPipe: false });
    let bytes = 0;
    let paused = false;
    let readWhilePaused = 0;
    const firstRead = new Promise<void>((resolve) => {
      handle.onStdout((d) => {
        bytes += d.length;
        if (paused) readWhilePaused += d.length;
        resolve();
      });
    });
    handle.onStderr(() => {});
    const exit = new Promise<{ code: number | null }>((resolve) => handle.onExit(resolve));
    await firstRead;
    handle.pause();
    paused = true;
    // the writer needs far more than a pipe holds: while paused, it cannot end
    const raced = await Promise.race([exit.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still paused'), 300))]);
    expect(raced).toBe('still paused');
    expect(readWhilePaused).toBe(0);
    paused = false;
    handle.resume();
    expect((await exit).code).toBe(0);
    expect(bytes).toBe(expected(30).out.length);
  });
});
