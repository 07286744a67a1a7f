// The agent's shared artifact cache for the `fetch` command (agent/commands/fetch-cache.ts) and where the agent
// puts it (agent/agent.ts): one open for every caller, a failed open (the cache held elsewhere) reported to the
// fetches and tried again, refusal of a directory whose files the cache's sweep would delete, and the cacheDir
// setting (default BASEDIR/cache of the top level; refused when it is or contains a worker's basedir).

import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactCacheRoot, misplacedCacheDir } from '../../agent/agent.js';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { refuseForeignDirectory, SharedArtifactCache } from '../../agent/commands/fetch-cache.js';
import { CONFIG_DEFAULTS, type AgentConfig, type WorkerConfig } from '../../agent/config/schema.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-cache-')));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const NO_FLOOR = { bytes: 0, percent: 0 };

function config(basedir: string, cacheDir: string | null, workers: Partial<WorkerConfig>[] = []): AgentConfig {
  const top = { ...CONFIG_DEFAULTS, basedir, masterHost: 'localhost', masterPort: 9989, name: 'w', password: 'p', cacheDir } as AgentConfig;
  top.workers = workers.map((w) => ({ ...top, ...w }) as WorkerConfig);
  return top;
}

describe('SharedArtifactCache', () => {
  it('opens once for all callers, sweeping at start-up, and closes', async () => {
    const dir = path.join(root, 'once');
    mkdirSync(path.join(dir, '.tmp'), { recursive: true });
    writeFileSync(path.join(dir, '.tmp', 'left.part'), 'a killed download');
    const log = new RecordingLogger();
    const shared = new SharedArtifactCache(dir, log, { floor: NO_FLOOR });
    shared.openAtStart();
    const [a, b] = await Promise.all([shared.get(), shared.get()]);
    expect(a).toBe(b);
    expect(readdirSync(path.join(dir, '.tmp'))).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(log.lines).toContainEqual(`info artifact cache in ${dir}: 0 entries`);
    await shared.close();
    await expect(shared.get()).rejects.toMatchObject({ code: 'E_CACHE_CLOSED' });
    expect(existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  it('reports a cache held elsewhere to each fetch, and opens it once it is free', async () => {
    const dir = path.join(root, 'held');
    const holder = await ArtifactCache.open({ root: dir, floor: NO_FLOOR });
    const log = new RecordingLogger();
    const shared = new SharedArtifactCache(dir, log, { floor: NO_FLOOR });
    shared.openAtStart();
    await expect(shared.get()).rejects.toMatchObject({ code: 'E_CACHE_LOCKED' });
    expect(log.lines.some((l) => l.startsWith(`warn artifact cache in ${dir} cannot be opened`))).toBe(true);
    await holder.close();
    const cache = await shared.get();
    expect(cache.root).toBe(dir);
    await shared.close();
  });

  it('refuses a directory holding files no cache wrote (the sweep would delete them), and leaves them', async () => {
    const dir = path.join(root, 'home');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const shared = new SharedArtifactCache(dir, new RecordingLogger(), { floor: NO_FLOOR });
    await expect(shared.get()).rejects.toMatchObject({ code: 'E_CACHE_FOREIGN', message: expect.stringContaining('notes.txt') });
    expect(readdirSync(dir)).toEqual(['notes.txt']);
    expect(() => refuseForeignDirectory(path.join(root, 'does-not-exist'))).not.toThrow();
    mkdirSync(path.join(root, 'empty'));
    expect(() => refuseForeignDirectory(path.join(root, 'empty'))).not.toThrow();
  });

  it("recognises a root holding only a crash's lock temp file or takeover guard as its own, and sweeps the temp file", async () => {
    const dir = path.join(root, 'crashed');
    mkdirSync(dir);
    // what a process killed inside createLock leaves (a pid no process has)
    const leftover = '.lock.999999999-0123456789ab';
    writeFileSync(path.join(dir, leftover), '999999999\n');
    const shared = new SharedArtifactCache(dir, new RecordingLogger(), { floor: NO_FLOOR });
    await shared.get();
    expect(readdirSync(dir).sort()).toEqual(['.lock', '.tmp']);
    await shared.close();
    const guarded = path.join(root, 'guarded');
    mkdirSync(guarded);
    writeFileSync(path.join(guarded, '.lock.takeover'), '999999999\n');
    expect(() => refuseForeignDirectory(guarded)).not.toThrow();
    writeFileSync(path.join(guarded, 'notes.txt'), 'mine');
    rmSync(path.join(guarded, '.lock.takeover'));
    writeFileSync(path.join(guarded, '.lock.x'), 'not a lock temp name');
    expect(() => refuseForeignDirectory(guarded)).toThrow(/holds files no cache wrote/);
  });
});

describe('cacheDir', () => {
  const base = path.join(root, 'w1');

  it('defaults to BASEDIR/cache of the top level; a relative one resolves against that basedir', () => {
    expect(artifactCacheRoot(config(base, null))).toBe(path.join(base, 'cache'));
    expect(artifactCacheRoot(config(base, '../shared-cache'))).toBe(path.join(root, 'shared-cache'));
    expect(artifactCacheRoot(config(base, '/var/cache/bbagent'))).toBe('/var/cache/bbagent');
  });

  it('is refused when it is or contains a basedir, and warned about inside one', () => {
    const c = config(base, null, [{ basedir: path.join(root, 'w2'), name: 'two' }]);
    expect(misplacedCacheDir(c, path.join(base, 'cache'))).toBeUndefined();
    expect(misplacedCacheDir(c, path.join(root, 'elsewhere'))).toBeUndefined();
    expect(() => misplacedCacheDir(c, root)).toThrow(/cacheDir .* is \(or contains\) worker 'w''s basedir/);
    expect(() => misplacedCacheDir(c, path.join(root, 'w2'))).toThrow(/worker 'two''s basedir/);
    expect(misplacedCacheDir(c, path.join(root, 'w2', 'artifacts'))).toMatch(/inside worker 'two''s basedir .*deleteLeftoverDirs would remove it/);
  });
});
