import { describe, expect, it } from 'vitest';
import { fakeTimers } from '../helpers/fake-timers.js';
import { BufferManager, joinChunks } from '../../agent/output/buffer.js';
import type { LineChunk, UpdateItem } from '../../agent/output/types.js';

function lines(n: number, width: number, start = 0): LineChunk {
  let text = '';
  const indexes: number[] = [];
  for (let i = 0; i < n; i++) {
    text += `line${String(start + i).padStart(width - 5, '0')}\n`;
    indexes.push(text.length - 1);
  }
  return { text, indexes, times: indexes.map(() => 1.0) };
}

describe('BufferManager', () => {
  it('splits a big stdout item like buildbot-worker (worker-internals-experiments.txt)', () => {
    const sent: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new BufferManager((m) => sent.push(m), 65536, 5000, t.timers);
    b.append({ kind: 'text', key: 'stdout', chunk: lines(10000, 10) });
    b.append({ kind: 'status', key: 'rc', value: 0 });
    b.append({ kind: 'text', key: 'stdout', chunk: { text: 'x\ny\n', indexes: [1, 3], times: [2, 3] } });
    b.append({ kind: 'text', key: 'header', chunk: { text: 'hdr\n', indexes: [3], times: [4] } });
    b.flush();
    const sizes = sent.slice(0, 4).map((m) => (m[0] as { chunk: LineChunk }).chunk.indexes.length);
    expect(sizes).toEqual([2520, 2520, 2520, 2440]);
    expect(sent[4]!.map((i) => (i.kind === 'status' ? i.key : i.kind === 'text' ? i.key : 'log'))).toEqual(['rc', 'stdout', 'header']);
    const all = sent
      .slice(0, 4)
      .map((m) => (m[0] as { chunk: LineChunk }).chunk.text)
      .join('');
    expect(all).toBe(lines(10000, 10).text);
  });

  it('joins consecutive items of the same stream and shifts indexes', () => {
    const sent: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new BufferManager((m) => sent.push(m), 65536, 5000, t.timers);
    b.append({ kind: 'text', key: 'stdout', chunk: { text: 'a\n', indexes: [1], times: [1] } });
    b.append({ kind: 'text', key: 'stdout', chunk: { text: 'bc\n', indexes: [2], times: [2] } });
    b.append({ kind: 'log', name: 'l1', chunk: { text: 'x\n', indexes: [1], times: [3] } });
    b.append({ kind: 'log', name: 'l2', chunk: { text: 'y\n', indexes: [1], times: [3] } });
    expect(sent).toHaveLength(0);
    t.fire();
    expect(sent).toEqual([
      [
        { kind: 'text', key: 'stdout', chunk: { text: 'a\nbc\n', indexes: [1, 4], times: [1, 2] } },
        { kind: 'log', name: 'l1', chunk: { text: 'x\n', indexes: [1], times: [3] } },
        { kind: 'log', name: 'l2', chunk: { text: 'y\n', indexes: [1], times: [3] } },
      ],
    ]);
  });

  it('flushes on timeout once, and the timer restarts for the next item', () => {
    const sent: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new BufferManager((m) => sent.push(m), 65536, 5000, t.timers);
    b.append({ kind: 'status', key: 'rc', value: 0 });
    expect(t.pending).toHaveLength(1);
    expect(t.pending[0]!.ms).toBe(5000);
    t.fire();
    expect(sent).toHaveLength(1);
    b.append({ kind: 'status', key: 'elapsed', value: 0.5 });
    expect(t.pending).toHaveLength(1);
  });
});

describe('joinChunks', () => {
  it('leaves chunks it did not make alone, and grows the ones it made in place', () => {
    const a = lines(2, 8);
    const b = lines(2, 8, 2);
    const c = lines(1, 8, 4);
    const before = JSON.stringify([a, b, c]);
    const ab = joinChunks(a, b);
    expect(ab).not.toBe(a);
    expect(JSON.stringify([a, b])).toBe(JSON.stringify(JSON.parse(before).slice(0, 2)));
    const abc = joinChunks(ab, c);
    expect(abc).toBe(ab);
    expect(JSON.stringify(c)).toBe(JSON.stringify(JSON.parse(before)[2]));
    expect(abc).toEqual(lines(5, 8));
    // a chunk from elsewhere joined after it is copied again, never changed
    const d = joinChunks(c, abc);
    expect(d).not.toBe(c);
    expect(c).toEqual(lines(1, 8, 4));
    expect(d.indexes).toEqual([...c.indexes, ...abc.indexes.map((i) => i + c.text.length)]);
  });
});
