// Checks the child's output on its way to the sink: UTF-8 across chunks, unwanted streams, and the pause
// while the pipeline asks for it.

import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ProcessHandle } from '../../platforms/types.js';
import { ChildOutput } from '../../agent/process/child-output.js';
import type { ProcessSink } from '../../agent/process/sink.js';

function fakeHandle() {
  const cbs: { out?: (d: Buffer) => void; err?: (d: Buffer) => void } = {};
  const calls: string[] = [];
  const handle = {
    pid: 1,
    onStdout: (cb: (d: Buffer) => void) => void (cbs.out = cb),
    onStderr: (cb: (d: Buffer) => void) => void (cbs.err = cb),
    onExit: () => undefined,
    writeStdin: () => undefined,
    closeStdin: () => undefined,
    pause: () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
    closeOutput: () => undefined,
  } satisfies ProcessHandle;
  return { handle, cbs, calls };
}

function setup(waits: number[] = [], send = { stdout: true, stderr: true }) {
  const texts: [string, string][] = [];
  let activity = 0;
  let ended = false;
  const sink: ProcessSink = {
    text: (s, t) => void texts.push([s, t]),
    log: () => undefined,
    status: () => undefined,
    backpressureMs: () => waits.shift() ?? 0,
  };
  const out = new ChildOutput({ sink, send, onActivity: () => void activity++, ended: () => ended });
  const h = fakeHandle();
  out.attach(h.handle);
  return { out, texts, h, activity: () => activity, end: () => (ended = true) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ChildOutput', () => {
  it('decodes UTF-8 across chunks; flush passes on an incomplete tail', () => {
    const t = setup();
    const e = Buffer.from('é', 'utf8');
    t.h.cbs.out!(Buffer.from([0x61, e[0]!]));
    t.h.cbs.out!(Buffer.from([e[1]!, 0x62]));
    t.h.cbs.err!(Buffer.from([0xc3]));
    t.out.flush();
    expect(t.texts).toEqual([
      ['stdout', 'a'],
      ['stdout', 'éb'],
      ['stderr', '\ufffd'],
    ]);
  });

  it('an unwanted stream is not sent, but is activity (the silence timer restarts)', () => {
    const t = setup([], { stdout: false, stderr: true });
    t.h.cbs.out!(Buffer.from('x'));
    expect(t.texts).toEqual([]);
    expect(t.activity()).toBe(1);
  });

  it('pauses the child while the sink asks, then resumes and counts the pause as activity', () => {
    vi.useFakeTimers();
    const t = setup([50, 0]);
    t.h.cbs.out!(Buffer.from('x'));
    expect(t.h.calls).toEqual(['pause']);
    t.h.cbs.out!(Buffer.from('y')); // already paused: not asked again
    expect(t.h.calls).toEqual(['pause']);
    vi.advanceTimersByTime(50);
    expect(t.h.calls).toEqual(['pause', 'resume']);
    expect(t.activity()).toBe(3);
  });

  it('no pause once the process ended', () => {
    vi.useFakeTimers();
    const t = setup([50]);
    t.end();
    t.h.cbs.out!(Buffer.from('x'));
    expect(t.h.calls).toEqual([]);
  });

  it('decodes ASCII reads the same as UTF-8 ones, around non-ASCII text and a BOM', () => {
    const t = setup();
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const e = Buffer.from('é', 'utf8');
    t.h.cbs.out!(Buffer.concat([bom, Buffer.from('first\n')])); // the decoder drops a leading BOM
    t.h.cbs.out!(Buffer.from('plain ascii\n'));
    t.h.cbs.out!(Buffer.concat([Buffer.from('caf'), e.subarray(0, 1)])); // ends inside a character
    t.h.cbs.out!(Buffer.concat([e.subarray(1), Buffer.from('\n')]));
    t.h.cbs.out!(Buffer.concat([bom, Buffer.from('x\n')])); // a BOM later on is text
    t.h.cbs.out!(Buffer.from('tail\n'));
    expect(t.texts.map(([, x]) => x).join('')).toBe('first\nplain ascii\ncafé\n\ufeffx\ntail\n');
  });
});
