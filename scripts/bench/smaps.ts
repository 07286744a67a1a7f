// Where a worker's resident memory is (scripts/bench/run --smaps): /proc/<pid>/smaps summed by kind of mapping
// (the executable's code, read-only data and data; the SEA blob; shared libraries; malloc's heap; anonymous
// mappings: V8's heap, malloc arenas, thread stacks), at idle-attached and at the build's peak, found by
// sampling smaps_rollup. For bbagent a preloaded probe (NODE_OPTIONS=--require) adds V8's own view: its heap
// spaces, external memory and array buffers at the peak of its RSS.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface SmapsEntry {
  start: number;
  perms: string;
  offset: number;
  name: string;
  /** KiB. */
  rss: number;
  anonymous: number;
}

/** Parses /proc/<pid>/smaps (proc(5)): a header line per mapping, then "Key: N kB" lines. */
export function parseSmaps(text: string): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  let cur: SmapsEntry | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ (\S{4}) ([0-9a-f]+) \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      cur = { start: parseInt(head[1]!, 16), perms: head[2]!, offset: parseInt(head[3]!, 16), name: head[4]!.trim(), rss: 0, anonymous: 0 };
      out.push(cur);
      continue;
    }
    const kv = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (kv && cur) cur[kv[1] === 'Rss' ? 'rss' : 'anonymous'] = Number(kv[2]);
  }
  return out;
}

/**
 * KiB of RSS by kind of mapping. `exe` is the process's executable. A mapping of it after its writable data
 * segment is the note segment postject appends: a SEA's blob.
 */
export function smapsBreakdown(entries: SmapsEntry[], exe: string): Record<string, number> {
  const blobOffset = Math.max(-1, ...entries.filter((e) => e.name === exe && e.perms.startsWith('rw')).map((e) => e.offset)) + 1;
  const by: Record<string, number> = {};
  const add = (k: string, v: number): void => {
    if (v > 0) by[k] = (by[k] ?? 0) + v;
  };
  for (const e of entries) {
    let kind: string;
    if (e.name === exe) {
      if (blobOffset > 0 && e.offset >= blobOffset) kind = 'exe: SEA blob (note segment)';
      else if (e.perms.includes('x')) kind = 'exe: code (.text)';
      else if (e.perms.startsWith('rw')) kind = 'exe: data (COW)';
      else kind = 'exe: read-only (.rodata incl. ICU, .dynsym, .eh_frame)';
    } else if (e.name === '[heap]') kind = 'malloc heap [heap]';
    else if (e.name === '[stack]') kind = 'main stack';
    else if (e.name.startsWith('/'))
      kind = e.name.startsWith('/memfd:') || e.name.includes('(deleted)') ? 'anon: memfd/deleted' : 'shared libraries and other files';
    else if (e.name === '') kind = 'anon: mmap (V8 heap, code space, malloc arenas, thread stacks)';
    else kind = `other ${e.name}`;
    add(kind, e.rss);
    if (e.anonymous > 0 && e.name.startsWith('/')) add('(of files: anonymous/COW)', e.anonymous);
  }
  return by;
}

export function rollupRssKiB(pid: number): number {
  const m = /^Rss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

export function smapsOf(pid: number): SmapsEntry[] {
  return parseSmaps(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}

/** Samples a process's RSS every `intervalMs`, keeping the smaps of its largest sample (re-read on each 256 KiB of growth). */
export class PeakSampler {
  private timer: NodeJS.Timeout;
  peakKiB = 0;
  peak: SmapsEntry[] = [];

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.tick();
  }

  private tick(): void {
    try {
      const rss = rollupRssKiB(this.pid);
      if (rss > this.peakKiB + 256) {
        this.peak = smapsOf(this.pid);
        this.peakKiB = this.peak.reduce((a, e) => a + e.rss, 0);
      }
    } catch {
      // the process is gone
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.tick();
  }
}

/**
 * A preload for bbagent (NODE_OPTIONS=--require): samples process.memoryUsage() every 20 ms and keeps V8's heap
 * space statistics of the largest RSS; on SIGUSR2 writes {now, peak} to the file in BBAGENT_MEMPROBE_OUT.
 */
const PROBE = `
const v8 = require('v8');
const fs = require('fs');
const out = process.env.BBAGENT_MEMPROBE_OUT;
const snap = () => ({ mem: process.memoryUsage(), spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, committed: s.physical_space_size }])) });
let peak = snap();
setInterval(() => { const m = process.memoryUsage(); if (m.rss > peak.mem.rss) peak = snap(); }, 20).unref();
process.on('SIGUSR2', () => fs.writeFileSync(out, JSON.stringify({ now: snap(), peak })));
`;

/** Writes the probe into `dir`; returns the environment that loads it into bbagent. */
export function memProbeEnv(dir: string, worker: string): { env: Record<string, string>; out: string } {
  const probe = path.join(dir, 'bbagent-memprobe.cjs');
  writeFileSync(probe, PROBE);
  const out = path.join(dir, `memprobe-${worker}.json`);
  return { env: { NODE_OPTIONS: `--require ${probe}`, BBAGENT_MEMPROBE_OUT: out }, out };
}

export interface ProbeSnap {
  mem: NodeJS.MemoryUsage;
  spaces: Record<string, { size: number; used: number; committed: number }>;
}

/** Asks the probe in `pid` for its figures (SIGUSR2) and reads them. */
export async function readProbe(pid: number, out: string): Promise<{ now: ProbeSnap; peak: ProbeSnap } | undefined> {
  try {
    process.kill(pid, 'SIGUSR2');
  } catch {
    return undefined;
  }
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    try {
      const data = JSON.parse(readFileSync(out, 'utf8')) as { now: ProbeSnap; peak: ProbeSnap };
      writeFileSync(out, '');
      return data;
    } catch {
      // not written yet
    }
  }
  return undefined;
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);

/** One line per kind: idle and peak MiB. */
export function formatBreakdown(idle: Record<string, number>, peak: Record<string, number>): string[] {
  const keys = [...new Set([...Object.keys(idle), ...Object.keys(peak)])].sort((a, b) => (peak[b] ?? 0) - (peak[a] ?? 0));
  const sum = (r: Record<string, number>): number => Object.entries(r).reduce((a, [k, v]) => (k.startsWith('(') ? a : a + v), 0);
  return [
    `    ${'mapping'.padEnd(66)} ${'idle'.padStart(7)} ${'peak'.padStart(7)} MiB`,
    ...keys.map((k) => `    ${k.padEnd(66)} ${mib(idle[k] ?? 0).padStart(7)} ${mib(peak[k] ?? 0).padStart(7)}`),
    `    ${'total'.padEnd(66)} ${mib(sum(idle)).padStart(7)} ${mib(sum(peak)).padStart(7)}`,
  ];
}

/** V8's view at bbagent's RSS peak, one line. */
export function formatProbe(p: ProbeSnap, when: string): string {
  const m = (b: number): string => (b / 1048576).toFixed(1);
  const spaces = Object.entries(p.spaces)
    .filter(([, s]) => s.committed > 0)
    .map(([n, s]) => `${n.replace(/_space$/, '')} ${m(s.committed)}`)
    .join(', ');
  return `    V8 ${when} (MiB): rss ${m(p.mem.rss)}, heapTotal ${m(p.mem.heapTotal)} (used ${m(p.mem.heapUsed)}), external ${m(p.mem.external)}, arrayBuffers ${m(p.mem.arrayBuffers)}; committed by space: ${spaces}`;
}
