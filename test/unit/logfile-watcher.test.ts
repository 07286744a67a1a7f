// Checks the `logfiles` watcher on files that used to stop the agent: a FIFO (opening it waited for a writer
// with the event loop held) and a link to /dev/zero (read for ever); and that a big regular file is read a
// slice per turn of the event loop, while the step runs and after it ended, all of it by the end.

import { appendFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOGFILE_SLICE_BYTES, LogFileWatcher } from '../../agent/process/logfile-watcher.js';
import { runIsolated } from './fs-isolated.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'logfile-watcher-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** In a child process (the old watcher never returned): a watcher on `file`, which the snippet `create`s after it started. */
async function watchCreated(file: string, create: string): Promise<{ timedOut: boolean; value: unknown; maxLagMs: number; stderr: string }> {
  return runIsolated(
    `import { execFileSync } from 'node:child_process';
     import { symlinkSync } from 'node:fs';
     import { LogFileWatcher } from '../../agent/process/logfile-watcher.js';
     const got: string[] = [];
     const w = new LogFileWatcher('log', ${JSON.stringify(file)}, false, (_n, t) => { if (got.join('').length < 1000) got.push(t); });
     w.start();
     ${create};
     w.poll();
     setTimeout(() => { w.poll(); void w.stop().then(() => report(got.join(''))); }, 50);`,
    15_000,
  );
}

describe('LogFileWatcher on hostile files', () => {
  it('a FIFO is reported in its log and never opened for a blocking read', async () => {
    const fifo = join(tmp, 'fifo.log');
    const r = await watchCreated(fifo, `execFileSync('mkfifo', [${JSON.stringify(fifo)}])`);
    expect(r.timedOut, r.stderr).toBe(false);
    expect(r.value, r.stderr).toBe(`bbagent: not reading logfile '${fifo}': it is a FIFO, not a regular file\n`);
    expect(r.maxLagMs).toBeLessThan(200);
  });

  it('a link to /dev/zero is reported, not read without end', async () => {
    const zero = join(tmp, 'zero.log');
    const r = await watchCreated(zero, `symlinkSync('/dev/zero', ${JSON.stringify(zero)})`);
    expect(r.timedOut).toBe(false);
    expect(r.value).toBe(`bbagent: not reading logfile '${zero}': it is a character device, not a regular file\n`);
    expect(r.maxLagMs).toBeLessThan(200);
  });
});

describe('LogFileWatcher on a big regular file', () => {
  it('reads one slice per turn of the event loop, the rest in the next turns, and everything by stop()', async () => {
    const big = join(tmp, 'big.log');
    const line = 'x'.repeat(99) + '\n';
    const content = line.repeat(Math.ceil((3 * LOGFILE_SLICE_BYTES + 12345) / line.length));
    const got: string[] = [];
    const w = new LogFileWatcher('log', big, false, (_n, t) => got.push(t));
    writeFileSync(big, content);
    w.poll();
    expect(got.join('').length).toBe(LOGFILE_SLICE_BYTES);
    // the following slices come in the next turns, without waiting for the 2 s poll
    await new Promise((r) => setImmediate(r));
    expect(got.join('').length).toBe(2 * LOGFILE_SLICE_BYTES);
    appendFileSync(big, 'tail\n');
    await w.stop();
    expect(got.join('')).toBe(content + 'tail\n');
  });

  it('the final read after the step goes a slice per turn of the event loop too, all of it before stop() resolves', async () => {
    // what a step wrote between the last poll and its end: many slices, read without holding the loop
    const last = join(tmp, 'last.log');
    const got: string[] = [];
    const w = new LogFileWatcher('log', last, false, (_n, t) => got.push(t));
    const chunk = Buffer.alloc(LOGFILE_SLICE_BYTES, 'y');
    writeFileSync(last, '');
    for (let i = 0; i < 20; i++) appendFileSync(last, chunk);
    appendFileSync(last, 'end\n');
    let atFirstTurn = -1;
    setImmediate(() => (atFirstTurn = got.join('').length));
    const stopped = w.stop();
    expect(w.stop()).toBe(stopped); // one final read, whoever asks
    await stopped;
    expect(atFirstTurn).toBeGreaterThanOrEqual(0);
    expect(atFirstTurn).toBeLessThanOrEqual(LOGFILE_SLICE_BYTES); // the loop turned after the first slice
    const all = got.join('');
    expect(all.length).toBe(20 * LOGFILE_SLICE_BYTES + 4);
    expect(all.endsWith('yend\n')).toBe(true);
  });

  it("follow: only what was added after the file's first change", async () => {
    const f = join(tmp, 'follow.log');
    writeFileSync(f, 'old\n');
    const got: string[] = [];
    const w = new LogFileWatcher('log', f, true, (_n, t) => got.push(t));
    symlinkSync(f, join(tmp, 'unrelated-link')); // another change elsewhere changes nothing
    appendFileSync(f, 'new\n');
    w.poll(); // opens at the current size
    appendFileSync(f, 'newer\n');
    await w.stop();
    expect(got.join('')).toBe('newer\n');
  });
});
