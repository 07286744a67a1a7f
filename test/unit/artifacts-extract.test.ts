// Extraction of archives made by the real GNU tar (plain, -z, -j, -J, --zstd) and Info-ZIP zip from a real tree:
// every file, directory and symlink comes back with its content, permission bits (masked as documented), symlink
// target and mtime; hardlinks stay hardlinks. Plus the atomic publish, the marker and the start-up sweep.
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { extractArchive, formatOf, isComplete, markComplete, sweepExtractTemps, tempPathFor, type ArchiveFormat } from '../../agent/artifacts/extract.js';
import { jsZstd, nativeZstd } from '../../agent/artifacts/decompress.js';
import { describeTree, makeTree, OLD_MTIME, run } from '../helpers/archives.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

let work: string;
let src: string;
const archives = new Map<string, string>();

const TAR_FLAGS: [ArchiveFormat, string[], string][] = [
  ['tar', [], 'tree.tar'],
  ['tar.gz', ['-z'], 'tree.tgz'],
  ['tar.bz2', ['-j'], 'tree.tar.bz2'],
  ['tar.xz', ['-J'], 'tree.tar.xz'],
  ['tar.zst', ['--zstd'], 'tree.tar.zst'],
];

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'bbagent-extract-'));
  src = makeTree(path.join(work, 'src'));
  for (const [format, flags, name] of TAR_FLAGS) {
    const out = path.join(work, name);
    run('tar', ['-C', src, ...flags, '-cf', out, '.']);
    archives.set(format, out);
  }
  const zip = path.join(work, 'tree.zip');
  run('zip', ['-q', '-r', '--symlinks', zip, '.'], { cwd: src });
  archives.set('zip', zip);
  // POSIX pax format (extended headers for the long path) instead of GNU's default
  const pax = path.join(work, 'tree-pax.tar.gz');
  run('tar', ['-C', src, '--format=pax', '-czf', pax, '.']);
  archives.set('pax', pax);
  // a misleading name: a gzip'd tar called .zip
  const liar = path.join(work, 'really-a-tgz.zip');
  run('cp', [archives.get('tar.gz') as string, liar]);
  archives.set('liar', liar);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What an entry of the source should look like once extracted with the default mask (0o022). */
function expectedMode(kind: string, mode: number): number {
  const perm = mode & 0o777 & ~0o022;
  return kind === 'dir' ? perm | 0o700 : kind === 'file' ? perm | 0o400 : mode;
}

function compareWithSource(out: string, opts: { hardlinks: boolean }): void {
  const want = describeTree(src);
  const got = describeTree(out);
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g?.kind, name).toBe(w.kind);
    if (w.kind === 'symlink') {
      expect(g?.target, name).toBe(w.target);
      continue;
    }
    expect(g?.content, name).toBe(w.content);
    expect(g?.mode, name).toBe(expectedMode(w.kind, w.mode));
    expect(g?.mtime, name).toBe(OLD_MTIME);
  }
  const leaf = got.get('lib/deep/deeper/leaf.txt');
  const hard = got.get('lib/hard-leaf.txt');
  if (opts.hardlinks) expect(hard?.ino).toBe(leaf?.ino);
  else expect(hard?.content).toBe(leaf?.content);
}

describe('extractArchive on archives of the real tar and zip programs', () => {
  for (const format of ['tar', 'tar.gz', 'tar.bz2', 'tar.xz', 'tar.zst', 'zip'] as const) {
    it(`${format}: every entry comes back (content, mode, symlink target, mtime${format === 'zip' ? '' : ', hardlink'})`, async () => {
      const target = path.join(work, `out-${format}`);
      const logger = new RecordingLogger();
      const progress: number[] = [];
      const r = await extractArchive(archives.get(format) as string, target, { logger, onProgress: (p) => progress.push(p.entries) });
      expect(r.format).toBe(format);
      expect(progress.at(-1)).toBe(r.entries);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(r.path).toBe(target);
      expect(r.bytes).toBeGreaterThan(1 << 20);
      expect(r.skipped).toBe(0);
      compareWithSource(target, { hardlinks: format !== 'zip' });
      // the setuid bit is gone, the executable bit kept
      expect(describeTree(target).get('bin/suid')?.mode).toBe(0o755);
      expect(readdirSync(work).filter((n) => n.includes('.extracting-'))).toEqual([]);
      expect(logger.lines.some((l) => l.startsWith(`info extracted ${archives.get(format)} (${format})`))).toBe(true);
    });
  }

  it('concurrent extractions (two xz, two bz2, a zst) do not share decoder state', async () => {
    const jobs = (['tar.xz', 'tar.xz', 'tar.bz2', 'tar.bz2', 'tar.zst'] as const).map((format, i) => ({ format, target: path.join(work, `concurrent-${i}`) }));
    await Promise.all(jobs.map((j) => extractArchive(archives.get(j.format) as string, j.target, { logger: new RecordingLogger() })));
    for (const j of jobs) compareWithSource(j.target, { hardlinks: true });
  });

  it('pax format (tar --format=pax): the same tree, long path included', async () => {
    const target = path.join(work, 'out-pax');
    await extractArchive(archives.get('pax') as string, target, { logger: new RecordingLogger() });
    compareWithSource(target, { hardlinks: true });
  });

  it('detects the format by its bytes, not by the name', async () => {
    const r = await extractArchive(archives.get('liar') as string, path.join(work, 'out-liar'), { logger: new RecordingLogger() });
    expect(r.format).toBe('tar.gz');
    expect(formatOf(Buffer.from('hello world'))).toBeNull();
  });

  it('a wider mask applies to every mode: modeMask 0o077 leaves group and world nothing', async () => {
    const target = path.join(work, 'out-mask');
    await extractArchive(archives.get('tar') as string, target, { logger: new RecordingLogger(), modeMask: 0o077 });
    const got = describeTree(target);
    expect(got.get('bin/run.sh')?.mode).toBe(0o700);
    expect(got.get('private')?.mode).toBe(0o700);
    expect(got.get('lib/readonly.txt')?.mode).toBe(0o400);
  });

  it('the zstd fallback (fzstd) decodes what node would; this node has native zstd or not, and says which', async () => {
    const native = nativeZstd();
    expect(native === null || typeof native === 'function').toBe(true);
    const raw = path.join(work, 'raw.zst');
    run('sh', ['-c', `printf 'zstd data %.0s' $(seq 1 1000) | zstd -q -c > '${raw}'`]);
    const chunks: Buffer[] = [];
    for await (const c of jsZstd([readFileSync(raw)])) chunks.push(c);
    expect(Buffer.concat(chunks).toString()).toBe('zstd data '.repeat(1000));
  });
});

describe('publishing the tree', () => {
  it('refuses a target that exists and is not empty, replaces it with replace: true, and takes an empty one', async () => {
    const target = path.join(work, 'pub');
    mkdirSync(target);
    writeFileSync(path.join(target, 'old.txt'), 'old');
    const tar = archives.get('tar') as string;
    const err = await extractArchive(tar, target, { logger: new RecordingLogger() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('E_EXTRACT_TARGET_EXISTS');
    expect((err as AgentError).message).toContain(target);
    await extractArchive(tar, target, { logger: new RecordingLogger(), replace: true });
    expect(existsSync(path.join(target, 'old.txt'))).toBe(false);
    expect(existsSync(path.join(target, 'README.md'))).toBe(true);
    const empty = path.join(work, 'pub-empty');
    mkdirSync(empty);
    await extractArchive(tar, empty, { logger: new RecordingLogger() });
    expect(existsSync(path.join(empty, 'README.md'))).toBe(true);
    expect(readdirSync(work).filter((n) => n.includes('.extracting-'))).toEqual([]);
  });

  it('markComplete writes <target>.complete last; isComplete needs both the tree and the marker', async () => {
    const target = path.join(work, 'marked');
    await extractArchive(archives.get('zip') as string, target, { logger: new RecordingLogger() });
    expect(await isComplete(target)).toBe(false);
    await markComplete(target, { sha256: 'ab'.repeat(32) });
    expect(await isComplete(target)).toBe(true);
    expect(JSON.parse(readFileSync(`${target}.complete`, 'utf8')).sha256).toBe('ab'.repeat(32));
    rmSync(target, { recursive: true });
    expect(await isComplete(target)).toBe(false);
  });

  it('an aborted extraction fails with E_EXTRACT_ABORTED and leaves nothing', async () => {
    const target = path.join(work, 'aborted');
    const ac = new AbortController();
    ac.abort();
    const err = await extractArchive(archives.get('tar.gz') as string, target, { logger: new RecordingLogger(), signal: ac.signal }).catch((e: unknown) => e);
    expect((err as AgentError).code).toBe('E_EXTRACT_ABORTED');
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('.extracting-'))).toEqual([]);
  });

  for (const format of ['tar.xz', 'zip'] as const) {
    it(`${format}: aborting halfway (from the progress callback) removes the temp tree; the next extraction works`, async () => {
      const target = path.join(work, `aborted-mid-${format}`);
      const ac = new AbortController();
      const archive = archives.get(format) as string;
      const err = await extractArchive(archive, target, { logger: new RecordingLogger(), signal: ac.signal, onProgress: () => ac.abort() }).catch(
        (e: unknown) => e,
      );
      expect((err as AgentError).code).toBe('E_EXTRACT_ABORTED');
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(work).filter((n) => n.includes('.extracting-'))).toEqual([]);
      // nothing stays locked (xz-decompress holds a process-wide mutex while it decodes)
      await extractArchive(archive, target, { logger: new RecordingLogger() });
      compareWithSource(target, { hardlinks: format !== 'zip' });
    });
  }

  it('sweepExtractTemps removes what dead processes left (dirs and marker temps), spares live ones and the rest', async () => {
    const cache = path.join(work, 'cache');
    const dead = tempPathFor(path.join(cache, 'x', 'key1'));
    const live = tempPathFor(path.join(cache, 'x', 'key2'));
    const deadMarker = `${path.join(cache, 'x', 'key3')}.complete.extracting-999999-abcdef`;
    const kept = path.join(cache, 'x', 'key4');
    mkdirSync(path.join(dead, 'sub'), { recursive: true });
    writeFileSync(path.join(dead, 'sub', 'f'), 'partial');
    mkdirSync(live, { recursive: true });
    writeFileSync(deadMarker, '{}');
    mkdirSync(kept);
    const deadPath = dead.replace(`.extracting-${process.pid}-`, '.extracting-999999-');
    rmSync(deadPath, { recursive: true, force: true });
    (await import('node:fs')).renameSync(dead, deadPath);
    const logger = new RecordingLogger();
    const removed = await sweepExtractTemps(cache, { logger, isAlive: (pid) => pid === process.pid });
    expect(removed.sort()).toEqual([deadMarker, deadPath].sort());
    expect(existsSync(live)).toBe(true);
    expect(existsSync(kept)).toBe(true);
    expect(logger.lines.filter((l) => l.includes('did not finish'))).toHaveLength(2);
  });
});
