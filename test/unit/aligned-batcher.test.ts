// The aligned batcher against a model of how a Buildbot 3.7 master stores a log (buildbot/db/logs.py, written
// here from its rules): each text item is one appendLog; the master prefixes every line with its channel
// character, drops the last newline and cuts chunks at the last newline before 64 KiB; compressLog later merges
// neighbours whose line span is at most 1,000 lines (the size rule uses compressed sizes; 80-byte build-log
// lines gzip well, so here the line rule decides).
import { describe, expect, it } from 'vitest';
import { fakeTimers } from '../helpers/fake-timers.js';
import { ALIGNED_MAX_BATCH, AlignedBatcher, MASTER_CHUNK_BYTES, storedLineBytes } from '../../agent/output/aligned-batcher.js';
import { BufferManager, type Timers } from '../../agent/output/buffer.js';
import type { LineChunk, UpdateItem } from '../../agent/output/types.js';

function chunkOf(lines: string[]): LineChunk {
  let text = '';
  const indexes: number[] = [];
  for (const l of lines) {
    text += `${l}\n`;
    indexes.push(text.length - 1);
  }
  return { text, indexes, times: indexes.map(() => 1) };
}

function buildLines(n: number, width: number, seed = 1): string[] {
  const out: string[] = [];
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const w = Math.max(1, width + ((x % 9) - 4));
    out.push(`${i}:`.padEnd(w, String.fromCharCode(97 + (x % 26))));
  }
  return out;
}

/** The master's chunks (line counts and stored bytes) for one appended item. */
function masterChunks(chunk: LineChunk): { lines: number; bytes: number }[] {
  const sizes = storedLineBytes(chunk);
  const out: { lines: number; bytes: number }[] = [];
  let lines = 0;
  let bytes = 0;
  for (const s of sizes) {
    if (lines > 0 && bytes + s > MASTER_CHUNK_BYTES) {
      out.push({ lines, bytes: bytes - 1 });
      lines = 0;
      bytes = 0;
    }
    lines++;
    bytes += s;
  }
  if (lines > 0) out.push({ lines, bytes: bytes - 1 });
  return out;
}

/** How many chunks compressLog would merge into others (by its line-span rule). */
function mergedByCompaction(chunks: { lines: number }[]): number {
  let merged = 0;
  let first = 0;
  let line = 0;
  let group = 0;
  for (const c of chunks) {
    const last = line + c.lines - 1;
    if (last - first > 1000) {
      if (group > 1) merged += group;
      first = line;
      group = 0;
    }
    group++;
    line = last + 1;
  }
  if (group > 1) merged += group;
  return merged;
}

function stored(messages: UpdateItem[][]) {
  const items = messages.flat().filter((i): i is Extract<UpdateItem, { kind: 'text' }> => i.kind === 'text');
  const chunks = items.flatMap((i) => masterChunks(i.chunk));
  return { items, chunks, text: items.map((i) => i.chunk.text).join('') };
}

/** A batcher with a period of 1 s and a first flush at 250 ms, on fake timers and a clock the test sets. */
function clockedBatcher() {
  const messages: UpdateItem[][] = [];
  const t = fakeTimers();
  let clock = 0;
  const b = new AlignedBatcher(
    (m) => messages.push(m),
    ALIGNED_MAX_BATCH,
    1000,
    t.timers,
    250,
    () => clock,
  );
  return { messages, t, b, setClock: (ms: number) => (clock = ms) };
}

describe('AlignedBatcher', () => {
  it('a fast stream of build-log lines: whole master chunks only, nothing for compaction to merge, 8x fewer appends', () => {
    const lines = buildLines(60_000, 80);
    const run = (make: (send: (m: UpdateItem[]) => void, t: Timers) => { append(i: UpdateItem): void; flush(): void }) => {
      const messages: UpdateItem[][] = [];
      const t = fakeTimers();
      const b = make((m) => messages.push(m), t.timers);
      for (let i = 0; i < lines.length; i += 50) b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(lines.slice(i, i + 50)) });
      b.flush();
      return stored(messages);
    };
    const aligned = run((send, t) => new AlignedBatcher(send, ALIGNED_MAX_BATCH, 1000, t, 250));
    // PB sends text only: buildbot-worker's rule, sized by text, is what bbagent did before
    const reference = run((send, t) => new BufferManager(send, 65536, 5000, t, 250, true));
    expect(aligned.text).toBe(chunkOf(lines).text);
    expect(reference.text).toBe(aligned.text);
    // every chunk but the very last is full: the next line would not have fitted
    for (const c of aligned.chunks.slice(0, -1)) expect(c.bytes).toBeGreaterThan(MASTER_CHUNK_BYTES - 100);
    expect(mergedByCompaction(aligned.chunks.slice(0, -1))).toBe(0);
    expect(mergedByCompaction(reference.chunks)).toBeGreaterThan(reference.chunks.length / 2);
    expect(aligned.items.length * 6).toBeLessThan(reference.items.length);
    for (const i of aligned.items) expect(Buffer.byteLength(i.chunk.text) + i.chunk.indexes.length).toBeLessThanOrEqual(ALIGNED_MAX_BATCH);
  });

  it('sends the same messages however the lines arrive (a line per read, a few, more than a chunk)', () => {
    const lines = buildLines(20_000, 100, 7).map((l, i) => (i % 97 === 0 ? `${l}é` : l));
    const messagesFor = (per: number): string[] => {
      const out: string[] = [];
      const t = fakeTimers();
      const b = new AlignedBatcher((m) => out.push(m.map((i) => (i.kind === 'status' ? '' : i.chunk.text)).join('|')), ALIGNED_MAX_BATCH, 1000, t.timers, 250);
      for (let i = 0; i < lines.length; i += per) b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(lines.slice(i, i + per)) });
      b.flush();
      return out;
    };
    const one = messagesFor(1);
    expect(one.length).toBeGreaterThan(3);
    for (const per of [7, 160, 900]) expect(messagesFor(per)).toEqual(one);
  });

  it('multi-byte text is counted in UTF-8 bytes, as the master stores it', () => {
    const lines = buildLines(20_000, 40).map((l) => `${l}ü€`);
    const messages: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new AlignedBatcher((m) => messages.push(m), ALIGNED_MAX_BATCH, 1000, t.timers, 250);
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(lines) });
    b.flush();
    const { chunks, text } = stored(messages);
    expect(text).toBe(chunkOf(lines).text);
    for (const c of chunks) expect(c.bytes).toBeLessThan(MASTER_CHUNK_BYTES);
    for (const c of chunks.slice(0, -1)) expect(c.bytes).toBeGreaterThan(MASTER_CHUNK_BYTES - 100);
  });

  it('first output after the first timeout; then whole chunks go on the timer and a partly filled chunk waits until its first line is two periods old', () => {
    const { messages, t, b, setClock } = clockedBatcher();
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(['first']) });
    expect(t.pending.map((p) => p.ms)).toEqual([250]);
    setClock(250);
    t.fire();
    expect(messages).toHaveLength(1);
    // 1.5 master chunks arrive within one period, the last line at 1,100 ms (so the partly filled chunk began then)
    const lines = buildLines(1200, 80);
    setClock(1100);
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(lines) });
    expect(t.pending.map((p) => p.ms)).toEqual([1000]);
    setClock(1250);
    t.fire();
    expect(messages).toHaveLength(2);
    const sent = stored([messages[1]!]);
    expect(sent.chunks).toHaveLength(1);
    expect(sent.chunks[0]!.bytes).toBeGreaterThan(MASTER_CHUNK_BYTES - 100);
    // the rest waits until its first line (1,100 ms) is two periods old, then goes even though not full
    expect(t.pending.map((p) => p.ms)).toEqual([1850]);
    setClock(3100);
    t.fire();
    expect(messages).toHaveLength(3);
    expect(stored(messages).text).toBe(chunkOf(['first', ...lines]).text);
    expect(t.pending).toHaveLength(0);
  });

  it('a partly filled chunk whose time is nearly up goes with the whole ones', () => {
    const { messages, t, b, setClock } = clockedBatcher();
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(['first']) });
    t.fire();
    // a chunk and a bit, the bit's first line long before the timer fires (the clock stood still meanwhile)
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(buildLines(900, 80)) });
    setClock(1950);
    t.fire();
    expect(messages).toHaveLength(2);
    expect(stored([messages[1]!]).chunks).toHaveLength(2);
    expect(t.pending).toHaveLength(0);
  });

  it('a sustained trickle (20 KiB every 100 ms): about one update per two periods, whole chunks, no line older than two periods', () => {
    const lines = buildLines(16_384, 127);
    const messages: { at: number; items: UpdateItem[] }[] = [];
    const arrived: number[] = [];
    let clock = 0;
    let timer: { at: number; cb: () => void } | undefined;
    const timers: Timers = {
      setTimeout: (cb, ms) => (timer = { at: clock + ms, cb }),
      clearTimeout: (h) => {
        if (timer === h) timer = undefined;
      },
    };
    const b = new AlignedBatcher(
      (m) => messages.push({ at: clock, items: m }),
      ALIGNED_MAX_BATCH,
      1000,
      timers,
      250,
      () => clock,
    );
    const per = 164;
    for (let i = 0, tick = 0; i < lines.length; i += per, tick++) {
      // timers due before this write fire first
      while (timer && timer.at <= tick * 100) {
        const due = timer;
        timer = undefined;
        clock = due.at;
        due.cb();
      }
      clock = tick * 100;
      const slice = lines.slice(i, i + per);
      for (const _ of slice) arrived.push(clock);
      b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(slice) });
    }
    b.flush();
    const sent = stored(messages.map((m) => m.items));
    expect(sent.text).toBe(chunkOf(lines).text);
    // 10 s of output: the first lines at 250 ms, then one update per period would be about 10; 5 go (at 1.3,
    // 3.2, 5.0, 6.9 and 8.7 s), plus the flush at the end
    expect(messages[0]!.at).toBe(250);
    expect(messages.length).toBeLessThanOrEqual(7);
    // after the first output, whole chunks only (but the very last)
    const later = stored(messages.slice(1).map((m) => m.items)).chunks;
    for (const c of later.slice(0, -1)) expect(c.bytes).toBeGreaterThan(MASTER_CHUNK_BYTES - 200);
    expect(mergedByCompaction(later.slice(0, -1))).toBe(0);
    // every line left within two periods of its arrival
    let line = 0;
    for (const m of messages.slice(0, -1)) {
      for (const i of m.items) if (i.kind === 'text') for (const _ of i.chunk.indexes) expect(m.at - arrived[line++]!).toBeLessThanOrEqual(2000);
    }
  });

  it('a slow trickle goes out once per period, whole or not', () => {
    const messages: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new AlignedBatcher((m) => messages.push(m), ALIGNED_MAX_BATCH, 1000, t.timers, 250);
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(['a']) });
    t.fire();
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(['b']) });
    b.append({ kind: 'text', key: 'stderr', chunk: chunkOf(['c']) });
    b.append({ kind: 'status', key: 'progress', value: 1 });
    t.fire();
    expect(messages.map((m) => m.length)).toEqual([1, 3]);
    expect(t.pending).toHaveLength(0);
  });

  it('streams, logs and status keep their order; the rc comes last', () => {
    const messages: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new AlignedBatcher((m) => messages.push(m), 70_000, 1000, t.timers, 250);
    const out = buildLines(3000, 60);
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(out.slice(0, 1500)) });
    b.append({ kind: 'log', name: 'l', chunk: chunkOf(['log line']) });
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(out.slice(1500)) });
    b.append({ kind: 'status', key: 'rc', value: 0 });
    b.flush();
    const flat = messages.flat();
    expect(flat.at(-1)).toEqual({ kind: 'status', key: 'rc', value: 0 });
    const text = flat.map((i) => (i.kind === 'text' ? i.chunk.text : i.kind === 'log' ? `[${i.chunk.text}]` : '')).join('');
    expect(text).toBe(chunkOf(out.slice(0, 1500)).text + '[log line\n]' + chunkOf(out.slice(1500)).text);
  });

  it('a maximum under one chunk still bounds every message', () => {
    const messages: UpdateItem[][] = [];
    const t = fakeTimers();
    const b = new AlignedBatcher((m) => messages.push(m), 4096, 1000, t.timers, 250);
    b.append({ kind: 'text', key: 'stdout', chunk: chunkOf(buildLines(1000, 100)) });
    b.flush();
    for (const m of messages)
      for (const i of m) if (i.kind !== 'status') expect(Buffer.byteLength(i.chunk.text) + i.chunk.indexes.length).toBeLessThanOrEqual(4096);
    expect(stored(messages).text).toBe(chunkOf(buildLines(1000, 100)).text);
  });
});
