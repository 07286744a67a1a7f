// kill -9 of a process using the artifact cache at random points (in a produce, a rename, a marker write, an
// eviction; on a small tmpfs when allowed, so evictions happen): after each kill, the start-up sweep of the next
// open leaves only complete entries, each of which verifies on a hit without a produce, and 0 leaked bytes
// (every file under the root belongs to a listed entry).
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { entryPath, markerPath } from '../../agent/artifacts/cache-key.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

/** Kill points: the issue asks for 200 in fetch + extract; the cache alone gets 50, within the time bound. */
const KILL_POINTS = 50;
/** The kill comes this long (at most, uniformly) after the child said "ready". */
const MAX_KILL_DELAY_MS = 250;
const READY_TIMEOUT_MS = 10_000;
const TMPFS_BYTES = 4 * 1024 * 1024;
/** With 4 MiB and entries of 256 KiB (+ a tree of the same), a 2 MiB floor evicts every few publishes. */
const FLOOR_BYTES = 2 * 1024 * 1024;
const TMPFS = tmpfsSupport();
if (!TMPFS.ok) console.warn(`artifacts-cache faults: no tmpfs (${TMPFS.why}): running without evictions`);

/** Every file under `dir` (relative path -> size), not following links. */
function files(dir: string, rel = ''): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of readdirSync(path.join(dir, rel))) {
    const r = rel ? path.join(rel, name) : name;
    const st = lstatSync(path.join(dir, r));
    if (st.isDirectory()) for (const [k, v] of files(dir, r)) out.set(k, v);
    else out.set(r, st.size);
  }
  return out;
}

function runUntilKilled(bundle: string, root: string, floor: number): Promise<{ killedAfterMs: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, root, String(floor)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killedAfterMs = -1;
    const timer = setTimeout(() => child.kill('SIGKILL'), READY_TIMEOUT_MS);
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      if (!c.toString().includes('ready') || killedAfterMs >= 0) return;
      killedAfterMs = Math.random() * MAX_KILL_DELAY_MS;
      setTimeout(() => child.kill('SIGKILL'), killedAfterMs);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && killedAfterMs >= 0) resolve({ killedAfterMs, stderr });
      else reject(new Error(`cache child ended by itself (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

describe('artifact cache: kill -9 at random points', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cache-kill-'));
  const root = path.join(scratch, 'cache');
  const bundle = path.join(scratch, 'child.cjs');

  beforeAll(() => {
    const out = buildSync({
      entryPoints: [path.join(__dirname, 'helpers', 'cache-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      write: false,
      logLevel: 'silent',
    });
    writeFileSync(bundle, out.outputFiles[0]!.text);
    mkdirSync(root);
    if (TMPFS.ok) mountTmpfs(root, TMPFS_BYTES);
  });

  afterAll(() => {
    if (TMPFS.ok) unmount(root);
    rmSync(scratch, { recursive: true, force: true });
  });

  it(`after each of ${KILL_POINTS} kills the sweep leaves nothing or verified entries, and 0 leaked bytes`, async () => {
    const floor = TMPFS.ok ? FLOOR_BYTES : 0;
    let swept = 0;
    let withEntries = 0;
    let unmarked = 0;
    for (let i = 0; i < KILL_POINTS; i++) {
      const { killedAfterMs } = await runUntilKilled(bundle, root, floor);
      const cache = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
      const entries = cache.entries();
      const owned = new Set(['.lock']);
      for (const e of entries) {
        const r = await cache.get(e.key, { produce: () => Promise.reject(new Error(`produce ran for a swept entry (kill ${i} at ${killedAfterMs} ms)`)) });
        expect(r.cached).toBe(true);
        const data = path.relative(root, entryPath(root, e.key));
        owned.add(path.relative(root, markerPath(root, e.key)));
        if (e.key.kind === 'file') owned.add(data);
        else for (const f of files(root, data).keys()) owned.add(f);
      }
      const leaked = [...files(root)].filter(([f]) => !owned.has(f));
      expect(leaked, `kill ${i} at ${killedAfterMs.toFixed(1)} ms`).toEqual([]);
      if (cache.sweepReport.removedItems > 0) swept++;
      if (cache.sweepReport.removed.some((l) => l.includes('no .complete marker'))) unmarked++;
      if (entries.length > 0) withEntries++;
      await cache.close();
      // the next child starts from empty, so that it publishes (not only hits) before its kill
      for (const name of readdirSync(root)) rmSync(path.join(root, name), { recursive: true, force: true });
    }
    // the kills landed mid-publish (something to sweep) and between publishes (complete entries)
    expect(swept).toBeGreaterThan(0);
    expect(withEntries).toBeGreaterThan(0);
    expect(unmarked).toBeGreaterThan(0); // some kills fell between a rename and its marker
  }, 60_000);
});
