// The `fetch` remote command through the command host, as a master drives it: a real HTTP origin on loopback
// (test/helpers/http-origin.ts), real tar.gz archives made by `tar`, the agent's shared cache (one per "agent"
// here, shared by two command hosts as by two workers). It proves the result the master reads (rc and the `fetch`
// JSON status), the one-line failures (404, both hashes of a mismatch, the disk floor), that a cache hit and
// concurrent fetches of one file make no more than one request, that an interrupt leaves nothing half-written,
// that paths resolve in the build (and stay confined), and the 2-second progress line.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SharedArtifactCache } from '../../agent/commands/fetch-cache.js';
import { StepProgress, stepProgressLine } from '../../agent/commands/fetch-progress.js';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import type { CommandArgs, CommandEnv } from '../../agent/commands/types.js';
import { silentLogger } from '../../agent/log.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { currentPlatform } from '../../platforms/index.js';
import { run } from '../helpers/archives.js';
import { HttpOrigin, sha256 } from '../helpers/http-origin.js';
import { RecordingChannel } from '../helpers/recording-channel.js';

const NO_FLOOR = { bytes: 0, percent: 0 };
const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'bbagent-cmd-fetch-')));
let archive: Buffer;
let origin: HttpOrigin;
const caches: SharedArtifactCache[] = [];

beforeAll(async () => {
  const tree = path.join(root, 'tree');
  mkdirSync(path.join(tree, 'tests'), { recursive: true });
  writeFileSync(path.join(tree, 'tests', 'run.txt'), 'the tests\n');
  writeFileSync(path.join(tree, 'big.bin'), randomBytes(256 * 1024)); // incompressible: the archive is > 256 KiB
  run('tar', ['czf', path.join(root, 'build.tar.gz'), '-C', tree, '.']);
  archive = readFileSync(path.join(root, 'build.tar.gz'));
  origin = await HttpOrigin.start(archive);
});
afterEach(async () => {
  for (const c of caches.splice(0)) await c.close();
  origin.log.length = 0;
  origin.script.length = 0;
  origin.setContent(archive);
});
afterAll(async () => {
  await origin.close();
  rmSync(root, { recursive: true, force: true });
});

interface Agent {
  basedir: string;
  env: CommandEnv;
  cache: SharedArtifactCache;
}

/** A fresh "agent": a basedir with a builder directory, and its shared cache in BASEDIR/cache. */
function agent(floor = NO_FLOOR, confine = false): Agent {
  const basedir = mkdtempSync(path.join(root, 'agent-'));
  mkdirSync(path.join(basedir, 'builder', 'build'), { recursive: true });
  const cache = new SharedArtifactCache(path.join(basedir, 'cache'), silentLogger, { floor });
  caches.push(cache);
  const env: CommandEnv = {
    basedir,
    platform: currentPlatform(),
    logger: silentLogger,
    environ: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    now: () => Date.now() / 1000,
    confineToBasedir: confine,
    artifacts: cache,
  };
  return { basedir, env, cache };
}

interface Ran {
  ch: RecordingChannel;
  rc: unknown;
  result: Record<string, unknown> | undefined;
  error: { code: string; message: string } | undefined;
}

function json(ch: RecordingChannel, key: string): never | undefined {
  const pieces = ch.status(key);
  return pieces.length ? (JSON.parse(pieces.join('')) as never) : undefined;
}

/** Starts `fetch` as a PB master does (paths relative to the builder directory); `host` may be shared. */
function start(a: Agent, args: CommandArgs, host = new CommandHost(COMMAND_TABLE, a.env)): { ch: RecordingChannel; done: Promise<Ran>; host: CommandHost } {
  const ch = new RecordingChannel();
  const done = host
    .start({ name: 'fetch', id: String(Math.random()), args, channel: ch, settings: defaultOutputSettings(), builderDir: path.join(a.basedir, 'builder') })
    .then(() => ({ ch, rc: ch.status('rc')[0], result: json(ch, 'fetch'), error: json(ch, 'fetch_error') }));
  return { ch, done, host };
}

const fetch = (a: Agent, args: CommandArgs): Promise<Ran> => start(a, args).done;

describe('fetch remote command', () => {
  it('extracts a verified archive into the build, then a second fetch is a cache hit with no request', async () => {
    const a = agent();
    const first = await fetch(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), workdir: 'build', extract: 'app' });
    expect(first.rc).toBe(0);
    const app = path.join(a.basedir, 'builder', 'build', 'app');
    expect(first.result).toEqual({
      path: app,
      algorithm: 'sha256',
      digest: sha256(archive),
      bytes: archive.length,
      cached: false,
      attempts: 1,
      seconds: expect.any(Number),
      tree_cached: false,
    });
    expect(readFileSync(path.join(app, 'tests', 'run.txt'), 'utf8')).toBe('the tests\n');
    expect(first.ch.text('stdout')).toMatch(/attempt 1: .*sha256 ok/);
    expect(first.ch.text('stdout')).toMatch(/^fetched 2\d\d\.\d KiB \(1 request\) in \d+\.\d\d s: /m);
    expect(origin.log).toHaveLength(1);

    // the second use extracts the cached archive into the cache's tree, the third copies that tree
    const second = await fetch(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), workdir: 'build', extract: 'again' });
    expect(second.rc).toBe(0);
    expect(second.result).toMatchObject({ cached: true, attempts: 0, bytes: archive.length, tree_cached: false });
    expect(second.ch.text('stdout')).toContain('from the cache, no request');
    const third = await fetch(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), workdir: 'build', extract: 'third' });
    expect(third.result).toMatchObject({ cached: true, attempts: 0, tree_cached: true });
    expect(third.ch.text('stdout')).toContain('the cached tree copied, no request');
    expect(readFileSync(path.join(a.basedir, 'builder', 'build', 'again', 'tests', 'run.txt'), 'utf8')).toBe('the tests\n');
    expect(origin.log).toHaveLength(1);
  });

  it('makes one request for concurrent fetches of one file by two workers sharing the cache', async () => {
    const a = agent();
    const hosts = [new CommandHost(COMMAND_TABLE, a.env), new CommandHost(COMMAND_TABLE, { ...a.env })];
    // the first response stalls, so the second fetch starts while the first is on the wire; then it is dropped
    // (the stall would last for ever) and the shared download resumes
    origin.plan({ kind: 'drop', bytes: 1000 });
    const runs = hosts.flatMap((h, i) =>
      [0, 1].map((j) => start(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), dest: `copy-${i}-${j}.tgz` }, h).done),
    );
    const results = await Promise.all(runs);
    for (const r of results) expect(r.rc).toBe(0);
    // one of them made the requests; the others shared its download (not a hit of an existing entry)
    expect(results.map((r) => r.result?.['attempts']).sort()).toEqual([0, 0, 0, 2]);
    // the dropped request and its resume: one download
    expect(origin.log.filter((l) => l.headers.range === undefined)).toHaveLength(1);
    for (const r of results) expect(readFileSync(r.result?.['path'] as string).equals(archive)).toBe(true);
  });

  it('fails a 404 with one line naming the URL and the status, rc 1', async () => {
    const a = agent();
    origin.plan({ kind: 'status', status: 404 });
    const r = await fetch(a, { url: origin.url('/missing.tar.gz'), sha256: sha256(archive), dest: 'x.tgz' });
    expect(r.rc).toBe(1);
    expect(r.error?.code).toBe('E_FETCH_HTTP');
    expect(r.error?.message).toMatch(new RegExp(`^${origin.url('/missing.tar.gz')}: .*404`));
    expect(r.ch.text('stderr')).toBe(`${r.error?.message}\n`);
    expect(r.result).toBeUndefined();
    expect(existsSync(path.join(a.basedir, 'builder', 'x.tgz'))).toBe(false);
  });

  it('fails a hash mismatch naming both hashes, and caches nothing', async () => {
    const a = agent();
    const wrong = 'ab'.repeat(32);
    const r = await fetch(a, { url: origin.url('/build.tar.gz'), sha256: wrong, extract: 'app' });
    expect(r.rc).toBe(1);
    expect(r.error?.message).toContain(wrong);
    expect(r.error?.message).toContain(sha256(archive));
    expect(r.error?.message.startsWith(origin.url('/build.tar.gz'))).toBe(true);
    expect(existsSync(path.join(a.basedir, 'builder', 'app'))).toBe(false);
  });

  it('fails at the disk floor before any request', async () => {
    const a = agent({ bytes: Number.MAX_SAFE_INTEGER, percent: 0 });
    const r = await fetch(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), dest: 'x.tgz' });
    expect(r.rc).toBe(1);
    expect(r.error?.code).toBe('E_CACHE_DISK_FLOOR');
    expect(r.error?.message.startsWith(origin.url('/build.tar.gz'))).toBe(true);
    expect(origin.log).toHaveLength(0);
  });

  it('an interrupt aborts the download and leaves no partial file anywhere', async () => {
    const a = agent();
    origin.plan({ kind: 'stall', bytes: 4096 });
    const { ch, done, host } = start(a, { url: origin.url('/build.tar.gz'), sha256: sha256(archive), dest: 'x.tgz' });
    await until(() => origin.log.length === 1 && ch.text('header') !== '');
    await until(() => partials(a.basedir).length > 0); // the partial file exists: the body is arriving
    host.interruptAll('test interrupt');
    const r = await done;
    expect(r.rc).toBe(1);
    expect(r.error?.message).toMatch(/aborted.*\(interrupted\)$/);
    expect(partials(a.basedir)).toEqual([]);
    expect(existsSync(path.join(a.basedir, 'builder', 'x.tgz'))).toBe(false);
  });

  it('interrupting one of two steps sharing a download does not fail the other', async () => {
    const a = agent();
    origin.plan({ kind: 'stall', bytes: 4096 });
    const args = { url: origin.url('/build.tar.gz'), sha256: sha256(archive) };
    const first = start(a, { ...args, dest: 'one.tgz' });
    await until(() => partials(a.basedir).length > 0);
    const second = start(a, { ...args, dest: 'two.tgz' });
    await until(() => second.ch.text('header') !== '');
    first.host.interruptAll('test interrupt');
    const [r1, r2] = await Promise.all([first.done, second.done]);
    expect(r1.rc).toBe(1);
    expect(r2.rc).toBe(0);
    expect(r2.ch.text('stdout')).toContain('the shared download was aborted by another step: fetching again');
    expect(readFileSync(path.join(a.basedir, 'builder', 'two.tgz')).equals(archive)).toBe(true);
    expect(partials(a.basedir)).toEqual([]);
  });

  it('without the cache, writes dest directly; a relative dest resolves in the builddir a msgpack master sends', async () => {
    const a = agent();
    const builddir = path.join(a.basedir, 'builder');
    const host = new CommandHost(COMMAND_TABLE, a.env);
    const ch = new RecordingChannel();
    await host.start({
      name: 'fetch',
      id: '1',
      args: { url: origin.url('/build.tar.gz'), sha512: sha512(archive), dest: 'direct.tgz', workdir: 'build', cache: false, builddir },
      channel: ch,
      settings: defaultOutputSettings(),
    });
    expect(ch.status('rc')).toEqual([0]);
    const result = json(ch, 'fetch') as unknown as Record<string, unknown>;
    expect(result).toMatchObject({ path: path.join(builddir, 'build', 'direct.tgz'), algorithm: 'sha512', cached: false });
    expect(readFileSync(path.join(builddir, 'build', 'direct.tgz')).equals(archive)).toBe(true);
    expect(existsSync(path.join(a.basedir, 'cache'))).toBe(false); // the cache was never opened
  });

  it('refuses bad arguments before it starts, naming them, and paths out of a confined basedir', () => {
    const a = agent(NO_FLOOR, true);
    const host = new CommandHost(COMMAND_TABLE, a.env);
    const url = origin.url('/build.tar.gz');
    const startWith = (args: CommandArgs): unknown =>
      host.start({ name: 'fetch', id: '1', args, channel: new RecordingChannel(), settings: defaultOutputSettings(), builderDir: path.join(a.basedir, 'b') });
    const h = sha256(archive);
    expect(() => startWith({ sha256: h })).toThrow(/missing args: url/);
    expect(() => startWith({ url })).toThrow(/exactly one of the arguments 'sha256' and 'sha512'/);
    expect(() => startWith({ url, sha256: h, sha512: h })).toThrow(/exactly one/);
    expect(() => startWith({ url, sha256: h, dest: 'a', extract: 'b' })).toThrow(/'dest' and 'extract' exclude each other/);
    expect(() => startWith({ url, sha256: h, cache: false })).toThrow(/give 'dest' or 'extract'/);
    expect(() => startWith({ url, sha256: h, dest: 'a', link: true })).toThrow(/'link' needs 'extract' and the cache/);
    expect(() => startWith({ url, sha256: h, extract: 'a', cache: false, link: true })).toThrow(/'link' needs 'extract' and the cache/);
    expect(() => startWith({ url, sha256: 42 })).toThrow(/argument 'sha256' must be a string/);
    expect(() => startWith({ url, sha256: h, extract: '../../../outside' })).toThrow(/confineToBasedir: refusing .*'\.\.' leads out/);
    expect(() => startWith({ url, sha256: h, dest: '/etc/passwd' })).toThrow(/confineToBasedir: refusing '\/etc\/passwd'/);
  });

  it('advertises the command with its own version', () => {
    const def = COMMAND_TABLE.find((d) => d.names.includes('fetch'));
    expect(def?.version).toBe('1.0');
  });
});

describe('StepProgress', () => {
  it('writes at most one line every 2 seconds, only while downloading', () => {
    let now = 100;
    const lines: string[] = [];
    const p = new StepProgress(
      (l) => lines.push(l),
      () => now,
    );
    const at = (t: number, bytes: number, state: 'downloading' | 'verifying' = 'downloading'): void => {
      now = t;
      p.onProgress({ state, attempt: 1, bytes, total: 4 << 20, rate: 1 << 20 });
    };
    at(100, 0);
    at(100.5, 1 << 19);
    at(101.9, 1 << 20);
    at(102, 2 << 20);
    at(103, 3 << 20, 'verifying');
    at(104.5, 4 << 20);
    expect(lines).toEqual([
      'downloading 0 B of 4.0 MiB (0%), 1.0 MiB/s, ETA 4 s\n',
      'downloading 2.0 MiB of 4.0 MiB (50%), 1.0 MiB/s, ETA 2 s\n',
      'downloading 4.0 MiB of 4.0 MiB (100%), 1.0 MiB/s, ETA 0 s\n',
    ]);
    expect(stepProgressLine({ state: 'downloading', attempt: 3, bytes: 1536 })).toBe('downloading 1.5 KiB (attempt 3)');
  });
});

function sha512(data: Buffer): string {
  return createHash('sha512').update(data).digest('hex');
}

/** What is being written: files in the cache's temp directory, and partials or temp copies elsewhere under `dir`. */
function partials(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(
    (n) => n.startsWith(`cache${path.sep}.tmp${path.sep}`) || /partial|\.fetch-|\.copy-/.test(path.basename(n)),
  );
}

/** Polls a condition the test cannot await as an event (a file appearing). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
