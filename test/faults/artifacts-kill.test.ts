// kill -9 during fetch + extract (issue 12): a child process does what `bbagent fetch --cache DIR --extract TREE`
// and the remote command do (helpers/artifacts-kill-child.ts: the cached tree made, then copied into TREE) and is SIGKILLed at a seeded random point: before,
// or while the thread pool runs, its Nth file-system call, N drawn over a whole run, so that the kills land in
// the download's writes, the hash of a hit, the publish renames, the extraction, the markers and the copy. Some runs start
// from an empty cache, others from what the previous kill left. After each kill, as the next agent would: the
// extraction sweep and the cache's start-up sweep; then the step's TREE is absent or whole (byte for byte the
// archive's tree), every cache entry left verifies on a hit without a download, and nothing else is on disk
// (0 leaked bytes: every file under the cache belongs to an entry).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { entryPath, markerPath } from '../../agent/artifacts/cache-key.js';
import { sweepFetchLeftovers } from '../../agent/artifacts/fetch-sweep.js';
import { silentLogger } from '../../agent/log.js';
import { HttpOrigin, sha256 } from '../helpers/http-origin.js';
import { seeded } from '../helpers/seeded.js';

/**
 * The 200 kills in CI (CI=true); 60 elsewhere. A kill costs one child process; wall time per kill measured
 * on a 2-core box: 0.1 s at a load of 3.5 (200 in 20 s), 0.2 s at a load of 6 (200 in 36 to 45 s), 0.34 s at a
 * load of 15 (100 in 36 s), hence the smaller default off CI. BBAGENT_KILL_POINTS sets it.
 */
const KILLS = Number(process.env.BBAGENT_KILL_POINTS ?? (process.env.CI === 'true' ? 200 : 60));
/** Children at a time, each with its own cache and step directory (kill i runs in slot i % SLOTS). */
const SLOTS = 3;
const SEED = 0x6b696c6c;
/** A run that starts from what the previous kill in its slot left (else from an empty cache). */
const WARM_SHARE = 0.3;
const CHILD_TIMEOUT_MS = 20_000;

interface Archive {
  name: string;
  bytes: Buffer;
  digest: string;
  origin: HttpOrigin;
}

/** What the child does: fetch an archive through the cache (or without one), extracted. */
interface Variant {
  archive: Archive;
  cached: boolean;
  /** The phase of each file-system call of a whole run from an empty cache (measured), by call number - 1. */
  phases: string[];
}

interface Kill {
  i: number;
  variant: Variant;
  fresh: boolean;
  at: number;
  mode: 'before' | 'inflight';
}

/** A tree description: relative path -> kind, mode and content (or link target). */
function describe_(dir: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const p = path.join(dir, r);
    const st = lstatSync(p);
    const mode = (st.mode & 0o777).toString(8);
    if (st.isSymbolicLink()) out.set(r, `link ${readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.set(r, `dir ${mode}`);
      for (const [k, v] of describe_(dir, r)) out.set(k, v);
    } else out.set(r, `file ${mode} ${sha256(readFileSync(p))}`);
  }
  return out;
}

/** Every non-directory under `dir` (relative path), not following links. */
function files(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(dir, rel))) {
    const r = rel ? path.join(rel, name) : name;
    if (lstatSync(path.join(dir, r)).isDirectory()) out.push(...files(dir, r));
    else out.push(r);
  }
  return out;
}

function runChild(bundle: string, args: string[]): Promise<{ stdout: string; stderr: string; signal: NodeJS.Signals | null; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: CHILD_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ stdout, stderr, signal, code }));
  });
}

describe('fetch + extract: kill -9 at seeded random points', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-kill-'));
  const bundle = path.join(scratch, 'child.cjs');
  const archives: Archive[] = [];
  const variants: Variant[] = [];
  /** The tree the archives were made of: what a whole extraction must be, item for item. */
  let reference: Map<string, string>;

  beforeAll(async () => {
    const out = buildSync({
      entryPoints: [path.join(__dirname, 'helpers', 'artifacts-kill-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      write: false,
      logLevel: 'silent',
    });
    writeFileSync(bundle, out.outputFiles[0]!.text);
    // a small tree with what extraction handles: files in subdirectories, modes, a symlink, an empty directory
    const src = path.join(scratch, 'src');
    mkdirSync(path.join(src, 'bin'), { recursive: true });
    mkdirSync(path.join(src, 'tests', 'unit'), { recursive: true });
    mkdirSync(path.join(src, 'empty'));
    for (let i = 0; i < 8; i++)
      writeFileSync(path.join(src, i % 2 ? 'tests/unit' : 'bin', `f${i}.bin`), randomBytes(12_000 + i * 3000), { mode: i % 3 ? 0o644 : 0o755 });
    writeFileSync(path.join(src, 'README'), 'build 1234\n');
    symlinkSync('bin/f0.bin', path.join(src, 'run'));
    reference = describe_(src);
    const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.'], { maxBuffer: 1 << 26 });
    const zipPath = path.join(scratch, 'build.zip');
    execFileSync('zip', ['-q', '-r', '--symlinks', zipPath, '.'], { cwd: src });
    for (const [name, bytes] of [
      ['build.tar.gz', tgz],
      ['build.zip', readFileSync(zipPath)],
    ] as const) {
      archives.push({ name, bytes, digest: sha256(bytes), origin: await HttpOrigin.start(bytes) });
    }
    // through the cache (both formats), and without a cache (the archive beside the tree, then removed)
    for (const [archive, cached] of [
      [archives[0]!, true],
      [archives[1]!, true],
      [archives[0]!, false],
    ] as const) {
      // the phases of a whole run from an empty cache, whose tree is the source tree
      const dir = path.join(scratch, `calibrate-${variants.length}`);
      mkdirSync(path.join(dir, 'work'), { recursive: true });
      const url = archive.origin.url(`/${archive.name}`);
      const r = await runChild(bundle, [cached ? path.join(dir, 'cache') : '-', path.join(dir, 'work', 'tree'), url, archive.digest, '0', 'before']);
      const m = /^phases (.*)$/m.exec(r.stdout);
      if (!m) throw new Error(`calibration run of ${archive.name} failed (${r.code ?? r.signal}): ${r.stderr}`);
      expect(describe_(path.join(dir, 'work', 'tree')), `the tree of ${archive.name}`).toEqual(reference);
      variants.push({ archive, cached, phases: m[1]!.split(',') });
    }
  }, 30_000);

  afterAll(async () => {
    await Promise.all(archives.map((a) => a.origin.close()));
    rmSync(scratch, { recursive: true, force: true });
  });

  /** The sweeps the next fetch (and a restarted agent) runs, then the checks; returns the cache entries left. */
  async function checkAfterKill(k: Kill, root: string, work: string, label: string): Promise<number> {
    await sweepFetchLeftovers(path.join(work, 'tree'), silentLogger);
    const left = readdirSync(work);
    expect(
      left.filter((n) => n !== 'tree'),
      `${label}: the step directory after the sweep`,
    ).toEqual([]);
    if (left.includes('tree')) expect(describe_(path.join(work, 'tree')), `${label}: the extracted tree`).toEqual(reference);
    if (!k.variant.cached) return 0;
    const cache = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
    try {
      const owned = new Set(['.lock']);
      for (const e of cache.entries()) {
        expect(
          archives.map((a) => a.digest),
          label,
        ).toContain(e.key.digest);
        const r = await cache.get(e.key, { produce: () => Promise.reject(new Error(`${label}: produce ran for an entry the sweep kept`)) });
        expect(r.cached).toBe(true);
        owned.add(path.relative(root, markerPath(root, e.key)));
        const data = path.relative(root, entryPath(root, e.key));
        if (e.key.kind === 'file') owned.add(data);
        else for (const f of files(root, data)) owned.add(f);
      }
      expect(
        files(root).filter((f) => !owned.has(f)),
        `${label}: files under the cache outside any entry`,
      ).toEqual([]);
      return cache.entries().length;
    } finally {
      await cache.close();
    }
  }

  it(`after each of ${KILLS} kills: the tree absent or whole, the cache nothing or verified entries, 0 leaked bytes`, async () => {
    const rand = seeded(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
    const kills: Kill[] = Array.from({ length: KILLS }, (_, i) => {
      const variant = pick(variants);
      // a phase first (each as likely: the extraction alone has most of the calls), then one of its calls; the
      // end of the run (after the last marker) counts as one more phase
      const phase = pick([...new Set(variant.phases), 'end']);
      const calls = variant.phases.flatMap((p, n) => (p === phase ? [n + 1] : []));
      const at = phase === 'end' ? variant.phases.length + 1 : pick(calls);
      return { i, variant, fresh: rand() >= WARM_SHARE, at, mode: rand() < 0.5 ? 'before' : 'inflight' };
    });
    const phases = new Map<string, number>();
    let withEntries = 0;
    let treesLeft = 0;
    const slot = async (s: number): Promise<void> => {
      const root = path.join(scratch, `slot${s}`, 'cache');
      const work = path.join(scratch, `slot${s}`, 'work');
      mkdirSync(work, { recursive: true });
      for (const k of kills.filter((x) => x.i % SLOTS === s)) {
        if (k.fresh) rmSync(root, { recursive: true, force: true });
        rmSync(path.join(work, 'tree'), { recursive: true, force: true });
        const { archive, cached } = k.variant;
        const url = archive.origin.url(`/${archive.name}`);
        const r = await runChild(bundle, [cached ? root : '-', path.join(work, 'tree'), url, archive.digest, String(k.at), k.mode]);
        const how = cached ? (k.fresh ? 'empty cache' : 'warm cache') : 'no cache';
        const label = `kill ${k.i} (${archive.name}, ${how}, call ${k.at} ${k.mode}): ${r.stderr.trim()}`;
        expect(r.signal, label).toBe('SIGKILL');
        const phase = /^kill \d+ (\S+)/m.exec(r.stderr)?.[1] ?? '?';
        phases.set(phase, (phases.get(phase) ?? 0) + 1);
        if ((await checkAfterKill(k, root, work, label)) > 0) withEntries++;
        if (readdirSync(work).includes('tree')) treesLeft++;
      }
    };
    await Promise.all(Array.from({ length: SLOTS }, (_, s) => slot(s)));
    console.info(
      `artifacts-kill: ${KILLS} kills by phase ${JSON.stringify(Object.fromEntries(phases))}; ${withEntries} left entries, ${treesLeft} a whole tree`,
    );
    // the draws reached every phase, and both outcomes (nothing yet, and complete results) were seen
    if (KILLS >= 100) for (const p of ['download', 'publish', 'marker', 'extract', 'hash', 'copy']) expect(phases.get(p) ?? 0, p).toBeGreaterThan(0);
    expect(withEntries).toBeGreaterThan(0);
    expect(withEntries).toBeLessThan(KILLS);
    expect(treesLeft).toBeGreaterThan(0);
  }, 120_000);
});
