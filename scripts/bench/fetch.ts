// scripts/bench/run fetch: the fetch benchmark of issue 12, side by side in one run on the same archive served by
// a real nginx (scripts/harness/nginx.ts) on loopback:
// - cold fetch + extract: `bbagent fetch URL --sha256 H --cache C --extract D` (C empty) against
//   `curl -sf URL | tar -xzf - -C D` (goal: >= 0.9x curl | tar's throughput);
// - warm hit against the same curl | tar (goal: >= 10x faster, 0 bytes on the wire, from nginx's access log): as
//   a build sees it, what the `fetch` remote command runs in the agent (fetchArtifact with `extract` on a cache
//   with the fingerprint fast path: the cached tree checked and copied into the build's directory), the entry's
//   first hit in an agent (a full check), the command as it was before (the cached archive checked, extracted
//   again: an A/B in one run) and the tree check alone; then the command line's hits, `--extract` (a process of
//   its own: a full check, then the copy) and the cache entry itself;
// - verification speed of a cached 1 GiB entry (a hit re-hashes it; goal >= 1 GiB/s);
// - resume after a drop at 90% of a 1 GiB file (an in-process TCP forwarder cuts the first response; bytes nginx
//   sent again, from its access log; goal <= 10% + 1 MiB).
// Each measure is the median of BENCH_FETCH_RUNS runs (default 3), rounds interleaved so that load drifts hit
// both sides alike. bbagent runs as the node bundle (build/bbagent.cjs), so its figures include Node's start-up
// (curl's start-up is in its figures too).
//
// Sizes (MiB) from the environment: BENCH_FETCH_ARCHIVE_MIB (default 256: the tree in the .tar.gz, half random
// half text; BENCH_FETCH_SHAPE=small makes it of 16 KiB files instead of up to 8 MiB ones), BENCH_FETCH_VERIFY_MIB (1024), BENCH_FETCH_RESUME_MIB (1024); BENCH_FETCH_DIR: the scratch
// directory's parent (default the system temp dir). Writes build/bench-fetch.json and prints a markdown table.

import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ArtifactCache, extractedKey, fileKey } from '../../agent/artifacts/cache.js';
import { download } from '../../agent/artifacts/download.js';
import { extractArchive } from '../../agent/artifacts/extract.js';
import { fetchArtifact } from '../../agent/artifacts/fetch.js';
import { silentLogger } from '../../agent/log.js';
import { Nginx } from '../harness/nginx.js';
import { requireExecutable } from '../harness/process.js';
import { CutProxy } from './fetch-cut-proxy.js';
import { median } from './metrics.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ROOT = process.cwd();
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
/** Another build of bbagent (BENCH_FETCH_BASELINE=path/to/bbagent.cjs) whose command line runs beside this one: an A/B. */
const BASELINE = process.env.BENCH_FETCH_BASELINE || undefined;

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not ${JSON.stringify(raw)}`);
  return n;
}

const SIZES = {
  archiveMiB: envNumber('BENCH_FETCH_ARCHIVE_MIB', 256),
  verifyMiB: envNumber('BENCH_FETCH_VERIFY_MIB', 1024),
  resumeMiB: envNumber('BENCH_FETCH_RESUME_MIB', 1024),
};
const RUNS = Math.round(envNumber('BENCH_FETCH_RUNS', 3));
/** The archive's shape: `big` (files of up to 8 MiB, the default) or `small` (16 KiB files, a test suite's shape). */
const SHAPE = process.env.BENCH_FETCH_SHAPE === 'small' ? 'small' : 'big';
if (![undefined, '', 'big', 'small'].includes(process.env.BENCH_FETCH_SHAPE)) throw new Error(`BENCH_FETCH_SHAPE is 'big' or 'small'`);

interface Timed {
  ms: number;
  stdout: string;
}

/** Runs a program to completion; its wall time and stdout. Rejects with its stderr when it fails. */
function timed(command: string, args: string[], cwd = ROOT): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${stderr}`));
    });
  });
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Writes `bytes` of random data (or of repeated text) to `file`, 4 MiB at a time. */
function writeData(file: string, bytes: number, kind: 'random' | 'text'): void {
  const block = Buffer.alloc(Math.max(1, Math.min(4 * MiB, bytes)));
  if (kind === 'text') block.write('bbagent fetch benchmark: a line of a log or a test source file\n'.repeat(Math.ceil(block.length / 64)));
  const fd = openSync(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= block.length) {
      if (kind === 'random') randomFillSync(block);
      writeSync(fd, block, 0, Math.min(left, block.length));
    }
  } finally {
    closeSync(fd);
  }
}

/** A tree of `mib` MiB (SHAPE: files of 8 MiB at most, or of 16 KiB; half random and half text) and its .tar.gz in `www`. */
async function makeArchive(scratch: string, www: string, mib: number): Promise<{ file: string; digest: string; bytes: number; files: number }> {
  const src = path.join(scratch, 'src');
  const total = Math.round(mib * MiB);
  const fileBytes = SHAPE === 'small' ? 16 * 1024 : Math.min(8 * MiB, Math.max(64 * 1024, Math.floor(total / 32)));
  const dirs = SHAPE === 'small' ? 64 : 4;
  for (let i = 0, at = 0; at < total; i++, at += fileBytes) {
    const dir = path.join(src, `dir${i % dirs}`);
    mkdirSync(dir, { recursive: true });
    writeData(path.join(dir, `part${i}.${i % 2 ? 'txt' : 'bin'}`), Math.min(fileBytes, total - at), i % 2 ? 'text' : 'random');
  }
  const files = Math.ceil(total / fileBytes);
  const file = path.join(www, 'build.tar.gz');
  await timed('sh', ['-c', `tar -C '${src}' -cf - . | gzip -1 > '${file}'`]);
  rmSync(src, { recursive: true, force: true });
  const bytes = statSync(file).size;
  return { file, digest: await sha256Of(file), bytes, files };
}

interface Row {
  measure: string;
  bbagent: string;
  reference: string;
  ratio: string;
  goal: string;
}

const fmtS = (ms: number): string => (ms < 100 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`);
const rate = (bytes: number, ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

/** Cold fetch + extract and the warm hits, against curl | tar, interleaved per round. */
async function coldAndWarm(nginx: Nginx, scratch: string, archive: { digest: string; bytes: number; files: number }): Promise<Row[]> {
  const url = nginx.url('/build.tar.gz');
  const curl = requireExecutable('curl');
  const t = {
    curl: [] as number[],
    cold: [] as number[],
    warmExtract: [] as number[],
    warmFile: [] as number[],
    baseCold: [] as number[],
    baseWarm: [] as number[],
  };
  const agent = { full: [] as number[], fast: [] as number[], link: [] as number[], before: [] as number[], check: [] as number[] };
  let warmRequests = 0;
  let warmBytes = 0;
  let curlBytes = 0;
  for (let r = 0; r < RUNS; r++) {
    const dir = mkdtempSync(path.join(scratch, `round${r}-`));
    const fetch = (...extra: string[]): Promise<Timed> =>
      timed(process.execPath, [BUNDLE, 'fetch', url, '--sha256', archive.digest, '--cache', 'cache', '--cache-floor', '0', '--json', ...extra], dir);
    mkdirSync(path.join(dir, 'curl'));
    let before = nginx.accessLog().length;
    t.curl.push((await timed('sh', ['-c', `'${curl}' -sf '${url}' | tar -xzf - -C curl`], dir)).ms);
    curlBytes = nginx
      .accessLog()
      .slice(before)
      .reduce((n, e) => n + e.bytes, 0);
    rmSync(path.join(dir, 'curl'), { recursive: true, force: true });
    const base = (...extra: string[]): Promise<Timed> =>
      timed(process.execPath, [BASELINE!, 'fetch', url, '--sha256', archive.digest, '--cache', 'cache-base', '--cache-floor', '0', '--json', ...extra], dir);
    // the baseline's cold run goes first in every other round (what runs after curl | tar's writes pays for them)
    if (BASELINE !== undefined && r % 2 === 1) t.baseCold.push((await base('--extract', 'base-cold')).ms);
    t.cold.push((await fetch('--extract', 'cold')).ms);
    if (BASELINE !== undefined && r % 2 === 0) t.baseCold.push((await base('--extract', 'base-cold')).ms);
    rmSync(path.join(dir, 'cold'), { recursive: true, force: true });
    rmSync(path.join(dir, 'base-cold'), { recursive: true, force: true });
    // the archive's second use caches its tree (untimed); the warm hit is a later use
    await fetch('--extract', 'prime');
    rmSync(path.join(dir, 'prime'), { recursive: true, force: true });
    if (BASELINE !== undefined) {
      await base('--extract', 'base-prime');
      rmSync(path.join(dir, 'base-prime'), { recursive: true, force: true });
    }
    before = nginx.accessLog().length;
    const warm = await fetch('--extract', 'warm');
    t.warmExtract.push(warm.ms);
    rmSync(path.join(dir, 'warm'), { recursive: true, force: true });
    t.warmFile.push((await fetch()).ms);
    const hit = JSON.parse(warm.stdout) as { cached: boolean; tree_cached?: boolean };
    if (!hit.cached || hit.tree_cached !== true) throw new Error(`the warm run was not a tree hit: ${warm.stdout}`);
    const log = nginx.accessLog().slice(before);
    warmRequests += log.length;
    warmBytes += log.reduce((n, e) => n + e.bytes, 0);
    if (BASELINE !== undefined) {
      t.baseWarm.push((await base('--extract', 'base-warm')).ms);
      rmSync(path.join(dir, 'base-warm'), { recursive: true, force: true });
    }
    // its own cache: one more download (untimed, not counted above), then hits only
    const agentRun = await agentHits(url, archive.digest, dir);
    for (const k of ['full', 'fast', 'link', 'before', 'check'] as const) agent[k].push(agentRun[k]);
    rmSync(dir, { recursive: true, force: true });
  }
  const curlMs = median(t.curl);
  const speedup = (ms: number): string => `${(curlMs / ms).toFixed(1)}x faster`;
  const warmRow = (measure: string, times: number[]): Row => ({
    measure,
    bbagent: fmtS(median(times)),
    reference: fmtS(curlMs),
    ratio: speedup(median(times)),
    goal: '>= 10x',
  });
  const coldMs = median(t.cold);
  const shape = `${SIZES.archiveMiB} MiB tree in ${archive.files} files, ${(archive.bytes / MiB).toFixed(0)} MiB .tar.gz`;
  return [
    {
      measure: `cold fetch + extract, \`bbagent fetch --cache --extract\` (${shape})`,
      bbagent: `${fmtS(coldMs)}, ${rate(archive.bytes, coldMs)}`,
      reference: `${fmtS(curlMs)}, ${rate(archive.bytes, curlMs)}`,
      ratio: `${(curlMs / coldMs).toFixed(2)}x the throughput`,
      goal: '>= 0.9x',
    },
    ...(BASELINE === undefined
      ? []
      : [
          {
            measure: `baseline (${path.basename(path.dirname(path.dirname(BASELINE)))}): cold fetch + extract`,
            bbagent: `${fmtS(median(t.baseCold))}, ${rate(archive.bytes, median(t.baseCold))}`,
            reference: fmtS(curlMs),
            ratio: `${(curlMs / median(t.baseCold)).toFixed(2)}x the throughput`,
            goal: '>= 0.9x',
          },
          warmRow('baseline: warm hit, `bbagent fetch --cache --extract`', t.baseWarm),
        ]),
    warmRow('warm hit as a build sees it: the `fetch` command with `extract` in the agent (tree fingerprint-checked, copied)', agent.fast),
    warmRow('the same with `link` (opt-in, read-only: a symlink to the cached tree, nothing copied)', agent.link),
    warmRow("the same, the entry's first hit in the agent (tree fully re-hashed, copied)", agent.full),
    warmRow('before: the `fetch` command with `extract` as it was (cached archive fingerprint-checked, extracted again)', agent.before),
    warmRow('of which the tree check alone (fingerprint fast path, nothing copied)', agent.check),
    warmRow('warm hit, `bbagent fetch --cache --extract` (its own process: tree fully re-hashed, copied)', t.warmExtract),
    warmRow('warm hit, `bbagent fetch --cache` (the verified cache entry itself)', t.warmFile),
    {
      measure: 'bytes on the wire, warm (nginx access log)',
      bbagent: `${warmBytes} B in ${warmRequests} requests`,
      reference: `${curlBytes} B`,
      ratio: '',
      goal: '0',
    },
  ];
}

/** The fixed cost in every bbagent row below: Node starting the bundle (and curl's own start, for comparison). */
async function startup(): Promise<Row> {
  const node: number[] = [];
  const curl: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    node.push((await timed(process.execPath, [BUNDLE, '--version'])).ms);
    curl.push((await timed(requireExecutable('curl'), ['--version'])).ms);
  }
  return { measure: 'start-up only (`bbagent --version`, `curl --version`)', bbagent: fmtS(median(node)), reference: fmtS(median(curl)), ratio: '', goal: '' };
}

/**
 * What the `fetch` remote command runs (fetchArtifact with `extract`, in the agent's process, on a cache with the
 * fingerprint fast path as the agent opens it), each hit into a fresh build directory: the entry's first hit in
 * an agent process (a full check), a later one (fingerprint), and, for an A/B in the same run, the command as it
 * was before trees were copied (the cached archive checked, then extracted again). The tree is made first
 * (the archive's first and second uses), untimed, in another "agent process" (cache object).
 */
async function agentHits(url: string, digest: string, dir: string): Promise<{ full: number; fast: number; link: number; before: number; check: number }> {
  const root = path.join(dir, 'agent-cache');
  const expected = { algorithm: 'sha256' as const, digest };
  const open = (): Promise<ArtifactCache> => ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 }, fastPath: true });
  const into = (cache: ArtifactCache, name: string, link = false) =>
    fetchArtifact({ url, expected, cache, extract: path.join(dir, name), link, logger: silentLogger, env: {} });
  const first = await open();
  // an archive's first use caches the archive, its second the tree
  await into(first, 'made')
    .then(() => into(first, 'made-tree'))
    .finally(() => first.close());
  const cache = await open();
  try {
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const started = performance.now();
      await fn();
      return performance.now() - started;
    };
    const full = await time(() => into(cache, 'full'));
    const fast = await time(async () => {
      const r = await into(cache, 'fast');
      if (r.treeCached !== true || r.attempts !== 0) throw new Error(`the agent's second hit was not a tree hit: ${JSON.stringify(r)}`);
    });
    const link = await time(() => into(cache, 'link', true));
    const check = await time(() => cache.get(extractedKey('sha256', digest), { produce: () => Promise.reject(new Error('not a hit')) }));
    // before: the archive's entry (its first hit re-hashes: untimed), then a later hit extracted again
    const key = fileKey('sha256', digest);
    const miss = (): Promise<never> => Promise.reject(new Error('the archive was not a hit'));
    await cache.get(key, { produce: miss });
    const before = await time(async () => {
      const hit = await cache.get(key, { produce: miss });
      await extractArchive(hit.path, path.join(dir, 'before'), { logger: silentLogger });
    });
    return { full, fast, link, before, check };
  } finally {
    await cache.close();
  }
}

/** Verification of a cached entry of BENCH_FETCH_VERIFY_MIB: the median time of a hit (a full re-hash). */
async function verification(nginx: Nginx, scratch: string, www: string): Promise<Row> {
  const bytes = Math.round(SIZES.verifyMiB * MiB);
  const file = path.join(www, 'verify.bin');
  writeData(file, bytes, 'random');
  const digest = await sha256Of(file);
  const url = nginx.url('/verify.bin');
  const root = path.join(scratch, 'verify-cache');
  const cache = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
  const times: number[] = [];
  try {
    const key = fileKey('sha256', digest);
    const produce = async (tmp: string) => ({
      digest: (await download({ url, expected: { algorithm: 'sha256', digest }, dest: tmp, logger: silentLogger, env: {} })).digest,
    });
    await cache.get(key, { produce });
    for (let r = 0; r < RUNS; r++) {
      const started = performance.now();
      const hit = await cache.get(key, { produce: () => Promise.reject(new Error('the verification run was not a hit')) });
      times.push(performance.now() - started);
      if (hit.verified !== 'hash') throw new Error(`a hit verified by ${hit.verified}, not by its hash`);
    }
  } finally {
    await cache.close();
    rmSync(root, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
  const ms = median(times);
  return {
    measure: `verify a cached ${(bytes / GiB).toFixed(2)} GiB entry (sha256, page cache)`,
    bbagent: `${(bytes / GiB / (ms / 1000)).toFixed(2)} GiB/s (${fmtS(ms)})`,
    reference: '',
    ratio: '',
    goal: '>= 1 GiB/s',
  };
}

/** Resume after the link drops at 90% of BENCH_FETCH_RESUME_MIB: bytes nginx sent beyond the file's size. */
async function resume(nginx: Nginx, scratch: string, www: string): Promise<Row> {
  const bytes = Math.round(SIZES.resumeMiB * MiB);
  const file = path.join(www, 'resume.bin');
  writeData(file, bytes, 'random');
  const digest = await sha256Of(file);
  const proxy = await CutProxy.start(nginx.port);
  const resent: number[] = [];
  const resumedAt: number[] = [];
  const times: number[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const dir = mkdtempSync(path.join(scratch, `resume${r}-`));
      const before = nginx.accessLog().length;
      proxy.cutAfter(Math.floor(bytes * 0.9));
      const run = await timed(process.execPath, [BUNDLE, 'fetch', proxy.url('/resume.bin'), '--sha256', digest, '--dest', 'out.bin', '--json'], dir);
      times.push(run.ms);
      const log = nginx.accessLog().slice(before);
      const result = JSON.parse(run.stdout) as { attempts: number };
      if (result.attempts < 2 || !log.some((e) => e.status === 206)) throw new Error(`no resume after the cut: ${JSON.stringify(log)}`);
      resent.push(log.reduce((n, e) => n + e.bytes, 0) - bytes);
      resumedAt.push(Number(/^bytes=(\d+)-$/.exec(log.find((e) => e.status === 206)?.range ?? '')?.[1] ?? NaN));
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await proxy.close();
    rmSync(file, { force: true });
  }
  const m = median(resent);
  return {
    measure: `resume after a drop at 90% of ${(bytes / GiB).toFixed(2)} GiB (bytes nginx sent beyond the file's size)`,
    bbagent:
      `${(m / MiB).toFixed(2)} MiB (${((100 * m) / bytes).toFixed(2)}% of the file: what was in socket buffers at the cut); ` +
      `Range from ${((100 * median(resumedAt)) / bytes).toFixed(2)}%; ${fmtS(median(times))} in all, with the 1 s back-off`,
    reference: '',
    ratio: '',
    goal: '<= 10% + 1 MiB',
  };
}

function table(rows: Row[]): string {
  const lines = ['| Measure | bbagent | curl \\| tar | bbagent vs curl \\| tar | Goal |', '|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.measure} | ${r.bbagent} | ${r.reference} | ${r.ratio} | ${r.goal} |`);
  return lines.join('\n');
}

const USAGE = `Usage: scripts/bench/run fetch

bbagent fetch against curl | tar on one archive served by nginx on loopback: cold fetch + extract, warm hits (and
the bytes they put on the wire), verification speed of a cached entry, resume after a drop at 90%. Prints a
markdown table of medians and writes build/bench-fetch.json. Settings from the environment (sizes in MiB):
  BENCH_FETCH_ARCHIVE_MIB  the tree in the .tar.gz (default 256; half random, half text)
  BENCH_FETCH_VERIFY_MIB   the cached entry verified (default 1024)
  BENCH_FETCH_RESUME_MIB   the file whose download is cut at 90% (default 1024)
  BENCH_FETCH_SHAPE        big (files of up to 8 MiB, default) or small (16 KiB files, a test suite's shape)
  BENCH_FETCH_RUNS         runs per measure (default 3)
  BENCH_FETCH_BASELINE     another build's bbagent.cjs: its command line runs beside this one (an A/B)
  BENCH_FETCH_DIR          where the scratch directory goes (default the system temp directory)`;

async function main(): Promise<void> {
  if (process.argv.length > 2) {
    const help = process.argv.slice(2).every((a) => a === '--help' || a === '-h');
    (help ? console.log : console.error)(USAGE);
    process.exit(help ? 0 : 2);
  }
  const scratch = mkdtempSync(path.join(process.env.BENCH_FETCH_DIR ?? os.tmpdir(), 'bbagent-bench-fetch-'));
  const www = path.join(scratch, 'www');
  mkdirSync(www);
  const nginx = await Nginx.start({ root: www });
  const started = performance.now();
  try {
    console.error(`bench fetch: sizes ${JSON.stringify(SIZES)} MiB, ${RUNS} runs each, in ${scratch}`);
    const archive = await makeArchive(scratch, www, SIZES.archiveMiB);
    const rows = [await startup()];
    rows.push(...(await coldAndWarm(nginx, scratch, archive)));
    rows.push(await verification(nginx, scratch, www));
    rows.push(await resume(nginx, scratch, www));
    const seconds = (performance.now() - started) / 1000;
    const report = `${table(rows)}\n\nMedians of ${RUNS} runs; sizes ${JSON.stringify(SIZES)} MiB, shape ${SHAPE}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg()[0]?.toFixed(1)} at the end; ${seconds.toFixed(0)} s in all.`;
    mkdirSync(path.join(ROOT, 'build'), { recursive: true });
    writeFileSync(path.join(ROOT, 'build', 'bench-fetch.json'), `${JSON.stringify({ sizes: SIZES, shape: SHAPE, runs: RUNS, rows, seconds }, null, 2)}\n`);
    console.log(report);
  } finally {
    await nginx.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
