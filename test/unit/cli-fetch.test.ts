// `bbagent fetch` as a ShellCommand runs it: the built bundle (node build/bbagent.cjs, built by
// `node scripts/build.mjs`) against the in-test origin. Exit 0 prints the path (or one JSON object), a cache hit
// sends no request, a 404 and a wrong sha256 exit 1 with one line naming the URL and the reason, a bad command
// line exits 2. The cache options: a floor that cannot be met fails before any request, a cache directory held by
// another process fails at once (or, with --cache-wait, is waited for). The terminal progress bar is checked in
// process with an injected TTY.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { fetchCommand, parseFloor } from '../../agent/cli/fetch.js';
import { HttpOrigin, sha256 } from '../helpers/http-origin.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bundle without blocking the loop (the origin lives in this process). */
function bbagent(args: string[], cwd: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BBAGENT_') && !/_proxy$/i.test(k)) env[k] = v;
  const child = spawn(process.execPath, [BUNDLE, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function expectOneLineFailure(r: Run, code: number, ...parts: string[]): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n')).toBe(true);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  for (const p of parts) expect(r.stderr).toContain(p);
}

describe('bbagent fetch', () => {
  const content = Buffer.alloc(300_000, 9);
  const digest = sha256(content);
  let origin: HttpOrigin;
  let tmp: string;
  let n = 0;
  const fresh = (): string => {
    const d = path.join(tmp, `d${n++}`);
    mkdirSync(d);
    return d;
  };

  beforeAll(async () => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cli-fetch-'));
    origin = await HttpOrigin.start(content);
  });
  afterAll(async () => {
    await origin.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('prints the path of the file it fetched (the URL file name by default, --dest otherwise), quietly', async () => {
    const cwd = fresh();
    const r = await bbagent(['fetch', origin.url('/builds/app.bin'), '--sha256', digest], cwd);
    expect(r).toEqual({ code: 0, stdout: `${path.join(cwd, 'app.bin')}\n`, stderr: '' });
    expect(readFileSync(path.join(cwd, 'app.bin')).equals(content)).toBe(true);
    const d = await bbagent(['fetch', origin.url(), '--sha256', digest, '--dest', 'sub.bin'], cwd);
    expect(d).toEqual({ code: 0, stdout: `${path.join(cwd, 'sub.bin')}\n`, stderr: '' });
    expect(readdirSync(cwd).sort()).toEqual(['app.bin', 'sub.bin']);
  });

  it('--json prints one object; through --cache the second run is a hit with no request', async () => {
    const cwd = fresh();
    const before = origin.log.length;
    const args = ['fetch', origin.url(), '--sha256', digest, '--cache', 'cache', '--dest', 'out.bin', '--json'];
    const first = await bbagent(args, cwd);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ path: path.join(cwd, 'out.bin'), sha256: digest, bytes: content.length, cached: false, attempts: 1 });
    // progress on a pipe with --json: one JSON line per state change
    const states = first.stderr
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as { state: string }).state);
    expect(states).toEqual(['connecting', 'downloading', 'verifying', 'done']);
    expect(origin.log.length).toBe(before + 1);

    const second = await bbagent(args, cwd);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ cached: true, attempts: 0, bytes: content.length });
    expect(origin.log.length).toBe(before + 1);
  });

  it('--extract DIR prints DIR with the archive extracted in it', async () => {
    const cwd = fresh();
    const src = fresh();
    writeFileSync(path.join(src, 'hello.txt'), 'hello\n');
    const { execFileSync } = await import('node:child_process');
    const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
    const o = await HttpOrigin.start(tgz);
    try {
      const r = await bbagent(['fetch', o.url('/t.tar.gz'), '--sha256', sha256(tgz), '--extract', 'tree'], cwd);
      expect(r).toEqual({ code: 0, stdout: `${path.join(cwd, 'tree')}\n`, stderr: '' });
      expect(readFileSync(path.join(cwd, 'tree', 'hello.txt'), 'utf8')).toBe('hello\n');
      expect(readdirSync(cwd)).toEqual(['tree']);
    } finally {
      await o.close();
    }
  });

  it('--cache --extract: the third run copies the cached tree (tree_cached), --link makes DIR a symlink to it', async () => {
    const cwd = fresh();
    const src = fresh();
    writeFileSync(path.join(src, 'hello.txt'), 'hello\n');
    const { execFileSync } = await import('node:child_process');
    const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
    const o = await HttpOrigin.start(tgz);
    try {
      const run = (dir: string, ...extra: string[]) =>
        bbagent(['fetch', o.url('/t.tar.gz'), '--sha256', sha256(tgz), '--cache', 'c', '--extract', dir, '--json', ...extra], cwd);
      const first = await run('one');
      expect(JSON.parse(first.stdout)).toMatchObject({ path: path.join(cwd, 'one'), cached: false, attempts: 1, tree_cached: false });
      // the archive's second use caches its tree, the third copies it
      const second = await run('two');
      expect(JSON.parse(second.stdout)).toMatchObject({ path: path.join(cwd, 'two'), cached: true, attempts: 0, tree_cached: false });
      const third = await run('two-b');
      expect(JSON.parse(third.stdout)).toMatchObject({ path: path.join(cwd, 'two-b'), cached: true, attempts: 0, tree_cached: true });
      expect(lstatSync(path.join(cwd, 'two')).isDirectory()).toBe(true);
      const linked = await run('three', '--link');
      expect(JSON.parse(linked.stdout)).toMatchObject({ path: path.join(cwd, 'three'), cached: true, attempts: 0, tree_cached: true, linked: true });
      expect(lstatSync(path.join(cwd, 'three')).isSymbolicLink()).toBe(true);
      expect(readFileSync(path.join(cwd, 'three', 'hello.txt'), 'utf8')).toBe('hello\n');
      expect(readlinkSync(path.join(cwd, 'three')).startsWith(path.join(cwd, 'c', 'sha256'))).toBe(true);
      expect(o.log).toHaveLength(1);
      expect(readdirSync(cwd).sort()).toEqual(['c', 'one', 'three', 'two', 'two-b']);
    } finally {
      await o.close();
    }
  });

  it('a 404 and a wrong sha256 exit 1 with one line naming the URL and the reason; nothing is left', async () => {
    const cwd = fresh();
    origin.plan({ kind: 'status', status: 404 });
    const notFound = await bbagent(['fetch', origin.url('/gone.bin'), '--sha256', digest], cwd);
    expectOneLineFailure(notFound, 1, origin.url('/gone.bin'), '404');
    const wrong = 'cd'.repeat(32);
    const bad = await bbagent(['fetch', origin.url('/x.bin'), '--sha256', wrong, '--json'], cwd);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    const lines = bad.stderr.trimEnd().split('\n');
    const last = lines[lines.length - 1]!;
    expect(last).toContain(origin.url('/x.bin'));
    expect(last).toContain(wrong);
    expect(last).toContain(digest);
    // the lines before the error are the JSON progress lines
    for (const l of lines.slice(0, -1)) expect(() => JSON.parse(l) as unknown).not.toThrow();
    const quiet = await bbagent(['fetch', origin.url('/x.bin'), '--sha256', wrong], cwd);
    expectOneLineFailure(quiet, 1, origin.url('/x.bin'), wrong, digest);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('SIGTERM mid-body aborts: exit 1, one line, no partial file left', async () => {
    const cwd = fresh();
    origin.plan({ kind: 'stall', bytes: 100_000 });
    const args = [BUNDLE, 'fetch', origin.url('/slow.bin'), '--sha256', digest, '--json'];
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stderr = '';
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    // the body has started once the progress says so
    await new Promise<void>((resolve) => {
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (stderr.includes('"state":"downloading"')) resolve();
      });
    });
    expect(readdirSync(cwd).filter((f) => f.startsWith('slow.bin.partial-'))).toHaveLength(1);
    child.kill('SIGTERM');
    expect(await closed).toBe(1);
    const lines = stderr.trimEnd().split('\n');
    expect(lines[lines.length - 1]).toBe(`${origin.url('/slow.bin')}: download aborted`);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a bad command line exits 2 with one line; help fetch prints the usage', async () => {
    const cwd = fresh();
    expectOneLineFailure(await bbagent(['fetch', origin.url()], cwd), 2, '--sha256');
    expectOneLineFailure(await bbagent(['fetch', origin.url(), '--sha256', digest, '--dest', 'a', '--extract', 'b'], cwd), 2, '--extract');
    expectOneLineFailure(
      await bbagent(['fetch', origin.url(), '--sha256', digest, '--extract', 'b', '--link'], cwd),
      2,
      '--link needs --extract DIR and --cache DIR',
    );
    const help = await bbagent(['help', 'fetch'], cwd);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: bbagent fetch URL/);
    expect(help.stdout).toContain('BASEDIR/cache');
  });

  it('--cache-floor: a floor no eviction can meet fails before any request, with one line naming the URL and the floor', async () => {
    const cwd = fresh();
    const before = origin.log.length;
    // 100% of the file system can never be free
    const r = await bbagent(['fetch', origin.url('/f.bin'), '--sha256', digest, '--cache', 'cache', '--cache-floor', '100%'], cwd);
    expectOneLineFailure(r, 1, `${origin.url('/f.bin')}: cache '${path.join(cwd, 'cache')}': disk floor:`);
    expect(origin.log.length).toBe(before);
    // a floor of 0 lets it through
    const ok = await bbagent(['fetch', origin.url('/f.bin'), '--sha256', digest, '--cache', 'cache', '--cache-floor', '0', '--json'], cwd);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ cached: false, bytes: content.length });
    expectOneLineFailure(
      await bbagent(['fetch', origin.url(), '--sha256', digest, '--cache-floor', '1G'], cwd),
      2,
      '--cache-floor and --cache-wait need --cache',
    );
    expectOneLineFailure(await bbagent(['fetch', origin.url(), '--sha256', digest, '--cache', 'c', '--cache-floor', 'lots'], cwd), 2, "--cache-floor 'lots'");
    expectOneLineFailure(await bbagent(['fetch', origin.url(), '--sha256', digest, '--cache', 'c', '--cache-wait', 'soon'], cwd), 2, "--cache-wait 'soon'");
  });

  it('parses floors as sizes in powers of 1024 or as percentages', () => {
    expect(parseFloor('0')).toEqual({ bytes: 0, percent: 0 });
    expect(parseFloor('1500')).toEqual({ bytes: 1500, percent: 0 });
    expect(parseFloor('2G')).toEqual({ bytes: 2 * 2 ** 30, percent: 0 });
    expect(parseFloor('1.5GiB')).toEqual({ bytes: 1.5 * 2 ** 30, percent: 0 });
    expect(parseFloor('500m')).toEqual({ bytes: 500 * 2 ** 20, percent: 0 });
    expect(parseFloor('64KB')).toEqual({ bytes: 64 * 1024, percent: 0 });
    expect(parseFloor('12.5%')).toEqual({ bytes: 0, percent: 12.5 });
    for (const bad of ['', 'G', '-1', '1e9', '2 G', '101%', '5P', '1iB']) expect(() => parseFloor(bad), bad).toThrow(/--cache-floor/);
  });

  it('a cache directory another process has open: one line naming the URL and the holder; --cache-wait waits for it', async () => {
    const cwd = fresh();
    const root = path.join(cwd, 'cache');
    const holder = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } }); // this test process holds it
    const args = ['fetch', origin.url('/held.bin'), '--sha256', digest, '--cache', 'cache', '--dest', 'out.bin'];
    try {
      expectOneLineFailure(await bbagent(args, cwd), 1, `${origin.url('/held.bin')}: cache '${root}' is in use by process ${process.pid}`);
      expectOneLineFailure(await bbagent([...args, '--cache-wait', '0.3'], cwd), 1, `is in use by process ${process.pid}`, '(waited 0.3 s)');
    } finally {
      await holder.close();
    }
    expect(existsSync(path.join(cwd, 'out.bin'))).toBe(false);
    // waiting (said once, as a JSON line): the holder lets go while the fetch waits, and the fetch goes ahead
    const again = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
    const child = spawn(process.execPath, [BUNDLE, ...args, '--cache-wait', '20', '--json'], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => {
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (stderr.includes('"event":"waiting"')) resolve();
      });
    });
    await again.close();
    expect(await closed, stderr).toBe(0);
    const events = stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; reason?: string; state?: string });
    expect(events[0]).toEqual({
      event: 'waiting',
      reason: `cache '${root}' is in use by process ${process.pid}: two agent processes cannot share a cache directory (remove '${path.join(root, '.lock')}' if that process is not an agent)`,
    });
    expect(events.slice(1).map((e) => e.state)).toEqual(['connecting', 'downloading', 'verifying', 'done']);
    expect(JSON.parse(stdout)).toMatchObject({ path: path.join(cwd, 'out.bin'), cached: false });

    // SIGTERM while waiting: exit 1 at once, the one-line error says it was aborted
    const third = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
    try {
      const w = spawn(process.execPath, [BUNDLE, ...args, '--cache-wait', '20', '--json'], { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
      let err = '';
      const done = new Promise<number | null>((resolve) => w.on('close', resolve));
      await new Promise<void>((resolve) => {
        w.stderr.setEncoding('utf8').on('data', (d: string) => {
          err += d;
          if (err.includes('"event":"waiting"')) resolve();
        });
      });
      w.kill('SIGTERM');
      expect(await done).toBe(1);
      expect(err.trimEnd().split('\n').pop()).toBe(`${origin.url('/held.bin')}: download aborted`);
    } finally {
      await third.close();
    }
  });

  it('on a terminal draws one line rewritten in place and clears it before printing the path', async () => {
    const cwd = fresh();
    const out: string[] = [];
    const raw: string[] = [];
    const code = await fetchCommand([origin.url(), '--sha256', digest, '--dest', path.join(cwd, 'f')], {
      out: (l) => out.push(l),
      err: (l) => raw.push(`${l}\n`),
      env: {},
      isTTY: true,
      errWrite: (t) => raw.push(t),
    });
    expect(code).toBe(0);
    expect(out).toEqual([path.join(cwd, 'f')]);
    expect(raw.every((t) => t.startsWith('\r') && !t.includes('\n'))).toBe(true);
    expect(raw.some((t) => t.includes('downloading') && t.includes(`/ 293.0 KiB`))).toBe(true);
    expect(raw[raw.length - 1]).toBe('\r\x1b[K');
  });
});
