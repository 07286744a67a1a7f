// Hostile, broken and oversized archives: each is refused with an AgentError naming the archive, the member and
// why; nothing is written outside the target (a sentinel directory beside it is snapshotted before and after),
// the target does not appear and the temp directory is gone. Archives come from the real GNU tar and zip where
// they will write them (`tar -P`, `--transform`, `zip --symlinks`), else from Python's tarfile and zipfile.
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { extractArchive, type ExtractOptions } from '../../agent/artifacts/extract.js';
import { makeTree, pyTar, pyZip, run } from '../helpers/archives.js';
import { snapshot } from '../helpers/fs-snapshot.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

let work: string;
let sentinel: string;
let staging: string;
let before: string[];
let n = 0;

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'bbagent-hostile-'));
  sentinel = path.join(work, 'sentinel');
  mkdirSync(sentinel);
  writeFileSync(path.join(sentinel, 'victim.txt'), 'untouched\n');
  staging = path.join(work, 'staging');
  mkdirSync(staging);
  writeFileSync(path.join(staging, 'pwned'), 'pwned\n');
  before = snapshot(sentinel);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A fresh directory for building one archive. */
function scratch(): string {
  const d = path.join(work, `scratch-${++n}`);
  mkdirSync(d);
  return d;
}

/** Extracts and expects a refusal with `code` whose message names the archive and `member`; checks the aftermath. */
async function expectRefused(archive: string, code: string, member: string, reason: RegExp, opts: Partial<ExtractOptions> = {}): Promise<void> {
  const target = path.join(work, `out-${++n}`);
  const err = await extractArchive(archive, target, { logger: new RecordingLogger(), ...opts }).catch((e: unknown) => e);
  expect(err, `${archive} was extracted`).toBeInstanceOf(AgentError);
  const e = err as AgentError;
  expect(e.code, e.message).toBe(code);
  expect(e.message).toContain(archive);
  expect(e.message).toContain(member);
  expect(e.message).toMatch(reason);
  expect(existsSync(target)).toBe(false);
  expect(readdirSync(work).filter((f) => f.includes('.extracting-'))).toEqual([]);
  expect(snapshot(sentinel)).toEqual(before);
  expect(existsSync('/tmp/bbagent-pwned')).toBe(false);
}

describe('hostile tar archives (real GNU tar where it will write them)', () => {
  it("refuses a '..' member (tar -P --transform)", async () => {
    const a = path.join(scratch(), 'dotdot.tar');
    run('tar', ['-C', staging, '-P', '--transform', 's,^,../sentinel/,', '-cf', a, 'pwned']);
    await expectRefused(a, 'E_EXTRACT_UNSAFE', '../sentinel/pwned', /'\.\.' component/);
  });

  it('refuses an absolute member (tar -P), compressed too', async () => {
    const d = scratch();
    for (const [flag, name] of [
      ['', 'abs.tar'],
      ['-z', 'abs.tgz'],
      ['--zstd', 'abs.tar.zst'],
    ] as const) {
      const a = path.join(d, name);
      run('tar', ['-C', staging, '-P', '--transform', `s,^,${sentinel}/,`, ...(flag ? [flag] : []), '-cf', a, 'pwned']);
      await expectRefused(a, 'E_EXTRACT_UNSAFE', `${sentinel}/pwned`, /absolute path/);
    }
  });

  it('refuses symlinks that leave the root: relative, absolute, and a chain of two that each stay inside', async () => {
    const cases: [string, string, RegExp][] = [
      ['../sentinel', 'esc', /leaves the extraction root/],
      ['/etc/passwd', 'abs', /absolute path/],
    ];
    for (const [target, name, reason] of cases) {
      const d = scratch();
      mkdirSync(path.join(d, 'tree'));
      symlinkSync(target, path.join(d, 'tree', name));
      const a = path.join(d, 'link.tar');
      run('tar', ['-C', path.join(d, 'tree'), '-cf', a, '.']);
      await expectRefused(a, 'E_EXTRACT_UNSAFE', name, reason);
    }
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    symlinkSync('.', path.join(d, 'tree', 'a'));
    symlinkSync('a/..', path.join(d, 'tree', 'b'));
    const a = path.join(d, 'chain.tar.gz');
    run('tar', ['-C', path.join(d, 'tree'), '-czf', a, 'a', 'b']);
    await expectRefused(a, 'E_EXTRACT_UNSAFE', 'b', /through other symlinks/);
  });

  it('refuses a file written through a symlink the archive made earlier (tar -r --transform)', async () => {
    const d = scratch();
    const tree = path.join(d, 'tree');
    mkdirSync(path.join(tree, 'sub'), { recursive: true });
    symlinkSync('sub', path.join(tree, 'l'));
    writeFileSync(path.join(tree, 'x'), 'through the link\n');
    const a = path.join(d, 'through.tar');
    run('tar', ['-C', tree, '-cf', a, 'sub', 'l']);
    run('tar', ['-C', tree, '-rf', a, '--transform', 's,^x$,l/x,', 'x']);
    await expectRefused(a, 'E_EXTRACT_UNSAFE', 'l/x', /parent 'l' is a symlink/);
  });

  it('refuses hardlinks outside the root, to a later member, or to a symlink (Python tarfile)', async () => {
    const d = scratch();
    const cases: [object[], string, RegExp][] = [
      [[{ name: 'h', type: 'hardlink', target: '../sentinel/victim.txt' }], 'h', /'\.\.' component/],
      [[{ name: 'h', type: 'hardlink', target: path.join(sentinel, 'victim.txt') }], 'h', /absolute path/],
      [
        [
          { name: 'h', type: 'hardlink', target: 'later.txt' },
          { name: 'later.txt', data: 'x' },
        ],
        'h',
        /not an earlier regular file/,
      ],
      [
        [
          { name: 's', type: 'symlink', target: 'f' },
          { name: 'f', data: 'x' },
          { name: 'h', type: 'hardlink', target: 's' },
        ],
        'h',
        /not an earlier regular file/,
      ],
    ];
    for (const [i, [members, member, reason]] of cases.entries()) {
      const a = path.join(d, `hard-${i}.tar`);
      pyTar(a, members);
      await expectRefused(a, 'E_EXTRACT_UNSAFE', member, reason);
    }
  });

  it('refuses Windows absolute names, backslash traversal and NUL (Python tarfile)', async () => {
    const d = scratch();
    const names: [string, RegExp][] = [
      ['C:\\bbagent-pwned', /drive letter/],
      ['C:bbagent-pwned', /drive letter/],
      ['\\\\server\\share\\bbagent-pwned', /UNC/],
      ['\\bbagent-pwned', /absolute path/],
      ['sub\\..\\..\\bbagent-pwned', /'\.\.' component/],
    ];
    for (const [i, [name, reason]] of names.entries()) {
      const a = path.join(d, `win-${i}.tar`);
      pyTar(a, [{ name, data: 'x' }]);
      await expectRefused(a, 'E_EXTRACT_UNSAFE', name, reason);
    }
  });

  it('refuses a file under a symlink spelled in another case (case-insensitive file systems)', async () => {
    const a = path.join(scratch(), 'case.tar');
    pyTar(a, [
      { name: 'sub', type: 'dir' },
      { name: 'L', type: 'symlink', target: 'sub' },
      { name: 'l', type: 'dir' },
      { name: 'l/x', data: 'x' },
    ]);
    await expectRefused(a, 'E_EXTRACT_UNSAFE', "'l'", /symlink from the archive/);
  });

  it('skips FIFOs (real tar) and devices with a warning; the rest is extracted', async () => {
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    run('mkfifo', [path.join(d, 'tree', 'fifo')]);
    writeFileSync(path.join(d, 'tree', 'f.txt'), 'f');
    const a = path.join(d, 'fifo.tar');
    run('tar', ['-C', path.join(d, 'tree'), '-cf', a, '.']);
    const logger = new RecordingLogger();
    const r = await extractArchive(a, path.join(d, 'out'), { logger });
    expect(r.skipped).toBe(1);
    expect(readFileSync(path.join(d, 'out', 'f.txt'), 'utf8')).toBe('f');
    expect(existsSync(path.join(d, 'out', 'fifo'))).toBe(false);
    expect(logger.lines).toContain(`warn ${a}: skipping member './fifo': a FIFO is not extracted`);
    const dev = path.join(d, 'dev.tar');
    pyTar(dev, [{ name: 'null', type: 'chr' }]);
    expect((await extractArchive(dev, path.join(d, 'out-dev'), { logger })).skipped).toBe(1);
  });
});

describe('hostile zip archives', () => {
  it('refuses a symlink that leaves the root (zip --symlinks)', async () => {
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    symlinkSync('../sentinel', path.join(d, 'tree', 'esc'));
    const a = path.join(d, 'esc.zip');
    run('zip', ['-q', '-r', '--symlinks', a, '.'], { cwd: path.join(d, 'tree') });
    await expectRefused(a, 'E_EXTRACT_UNSAFE', 'esc', /leaves the extraction root/);
  });

  it("refuses '..', absolute, drive and backslash names and a file through a symlink (Python zipfile)", async () => {
    const d = scratch();
    const cases: [object[], string, RegExp][] = [
      [[{ name: '../sentinel/pwned' }], '../sentinel/pwned', /'\.\.' component/],
      [[{ name: '/tmp/bbagent-pwned' }], '/tmp/bbagent-pwned', /absolute path/],
      [[{ name: 'C:\\bbagent-pwned' }], 'C:\\bbagent-pwned', /drive letter/],
      [[{ name: '..\\sentinel\\pwned' }], '..\\sentinel\\pwned', /'\.\.' component/],
      [[{ name: 'abs', symlink: '/etc' }], 'abs', /absolute path/],
      [[{ name: 'sub/' }, { name: 'l', symlink: 'sub' }, { name: 'l/x', data: 'x' }], 'l/x', /parent 'l' is a symlink/],
    ];
    for (const [i, [members, member, reason]] of cases.entries()) {
      const a = path.join(d, `z-${i}.zip`);
      pyZip(a, members);
      await expectRefused(a, 'E_EXTRACT_UNSAFE', member, reason);
    }
  });
});

describe('truncated and corrupt archives', () => {
  let tree: string;
  beforeAll(() => {
    tree = makeTree(path.join(scratch(), 'tree'));
  });

  for (const [name, flags] of [
    ['t.tar', []],
    ['t.tgz', ['-z']],
    ['t.tar.bz2', ['-j']],
    ['t.tar.xz', ['-J']],
    ['t.tar.zst', ['--zstd']],
    ['t.zip', null],
  ] as const) {
    it(`${name} cut to 60% fails with E_EXTRACT_CORRUPT and leaves nothing`, async () => {
      const a = path.join(scratch(), name);
      if (flags) run('tar', ['-C', tree, ...flags, '-cf', a, '.']);
      else run('zip', ['-q', '-r', '--symlinks', a, '.'], { cwd: tree });
      truncateSync(a, Math.floor(statSync(a).size * 0.6));
      await expectRefused(a, 'E_EXTRACT_CORRUPT', '', /corrupt|truncated/);
    });
  }

  it('a plain tar cut at a member boundary (no end blocks) is truncated, not short', async () => {
    const a = path.join(scratch(), 'cut.tar');
    pyTar(a, [
      { name: 'a.txt', data: 'a' },
      { name: 'b.txt', data: 'b' },
    ]);
    truncateSync(a, 512 * 2); // header + data block of a.txt
    await expectRefused(a, 'E_EXTRACT_CORRUPT', 'cut.tar', /no end-of-archive blocks/);
  });

  it('a flipped byte in gzip data or in a zip member fails its check', async () => {
    const d = scratch();
    const tgz = path.join(d, 'flip.tgz');
    run('tar', ['-C', tree, '-czf', tgz, '.']);
    const zip = path.join(d, 'flip.zip');
    run('zip', ['-q', '-0', '-r', zip, 'big.bin'], { cwd: tree });
    for (const a of [tgz, zip]) {
      const buf = readFileSync(a);
      const at = Math.floor(buf.length / 2);
      buf[at] = (buf[at] as number) ^ 0xff;
      writeFileSync(a, buf);
    }
    await expectRefused(tgz, 'E_EXTRACT_CORRUPT', '', /corrupt/);
    await expectRefused(zip, 'E_EXTRACT_CORRUPT', 'big.bin', /CRC-32/);
  });

  it('a file that is no archive fails with E_EXTRACT_FORMAT', async () => {
    const a = path.join(scratch(), 'notes.tar.gz');
    writeFileSync(a, 'just text, no archive\n');
    await expectRefused(a, 'E_EXTRACT_FORMAT', 'starts with', /not an archive/);
  });
});

describe('archive bombs stop at the caps', () => {
  it('a 1 GiB member (tar --zstd of a sparse file) is refused from its header, before any data', async () => {
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    writeFileSync(path.join(d, 'tree', 'zeros'), '');
    truncateSync(path.join(d, 'tree', 'zeros'), 1024 ** 3);
    const a = path.join(d, 'bomb.tar.zst');
    run('tar', ['-C', path.join(d, 'tree'), '--zstd', '-cf', a, 'zeros']);
    expect(statSync(a).size).toBeLessThan(1024 * 1024);
    await expectRefused(a, 'E_EXTRACT_LIMIT', 'zeros', /more than 67108864 bytes/, { limits: { maxBytes: 64 * 1024 ** 2 } });
  });

  it('many members adding up past the byte cap stop while streaming (tar -z)', async () => {
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    for (let i = 0; i < 40; i++) {
      const f = path.join(d, 'tree', `z${String(i).padStart(2, '0')}`);
      writeFileSync(f, '');
      truncateSync(f, 1024 ** 2);
    }
    const a = path.join(d, 'many.tgz');
    run('tar', ['-C', path.join(d, 'tree'), '-czf', a, '.']);
    await expectRefused(a, 'E_EXTRACT_LIMIT', "'./z", /more than 10485760 bytes/, { limits: { maxBytes: 10 * 1024 ** 2 } });
  });

  it('zip members adding up past the byte cap are refused from their declared sizes', async () => {
    const d = scratch();
    mkdirSync(path.join(d, 'tree'));
    for (let i = 0; i < 40; i++) {
      const f = path.join(d, 'tree', `z${String(i).padStart(2, '0')}`);
      writeFileSync(f, '');
      truncateSync(f, 1024 ** 2);
    }
    const a = path.join(d, 'many.zip');
    run('zip', ['-q', '-r', a, '.'], { cwd: path.join(d, 'tree') });
    await expectRefused(a, 'E_EXTRACT_LIMIT', "'z", /more than 10485760 bytes/, { limits: { maxBytes: 10 * 1024 ** 2 } });
  });

  it('too many members stop at the entry cap (zip and tar)', async () => {
    const d = scratch();
    const tree = path.join(d, 'tree');
    mkdirSync(tree);
    for (let i = 0; i < 300; i++) writeFileSync(path.join(tree, `f${i}`), '');
    const tar = path.join(d, 'count.tar.xz');
    run('tar', ['-C', tree, '-cJf', tar, '.']);
    const zip = path.join(d, 'count.zip');
    run('zip', ['-q', '-r', zip, '.'], { cwd: tree });
    for (const a of [tar, zip]) await expectRefused(a, 'E_EXTRACT_LIMIT', 'f', /more than 100 members/, { limits: { maxEntries: 100 } });
  });
});

describe('decoders hand out bounded steps, so a bomb cannot fill memory before the cap', () => {
  /** Takes `upTo` bytes from a decoder, checking each step's size, then stops it. */
  async function takeBounded(decoded: AsyncGenerator<Buffer>, upTo: number, maxStep: number): Promise<number> {
    let total = 0;
    for await (const chunk of decoded) {
      expect(chunk.length).toBeLessThanOrEqual(maxStep);
      total += chunk.length;
      if (total >= upTo) break;
    }
    return total;
  }

  it('bzip2: 256 MiB of zeros in ~200 bytes comes out block by block (at most 1 MiB a step)', async () => {
    const a = path.join(scratch(), 'zeros.bz2');
    run('sh', ['-c', `head -c 268435456 /dev/zero | bzip2 -9 > '${a}'`]);
    expect(statSync(a).size).toBeLessThan(4096);
    const { bunzip2 } = await import('../../agent/artifacts/bzip2-stream.js');
    expect(await takeBounded(bunzip2([readFileSync(a)]), 64 * 1024 ** 2, 1024 ** 2)).toBeGreaterThanOrEqual(64 * 1024 ** 2);
  });

  it('zstd (fzstd fallback): 1 GiB of zeros comes out in slices of at most one step of input', async () => {
    const a = path.join(scratch(), 'zeros.zst');
    run('sh', ['-c', `head -c 1073741824 /dev/zero | zstd -q -c > '${a}'`]);
    const { jsZstd } = await import('../../agent/artifacts/decompress.js');
    let steps = 0;
    let biggestStep = 0;
    const counted = async function* (): AsyncGenerator<Buffer> {
      for await (const c of jsZstd([readFileSync(a)])) {
        steps++;
        biggestStep = Math.max(biggestStep, c.length);
        yield c;
      }
    };
    expect(await takeBounded(counted(), 64 * 1024 ** 2, 128 * 1024)).toBeGreaterThanOrEqual(64 * 1024 ** 2);
    expect(steps).toBeGreaterThan(64 * 8 - 1);
    expect(biggestStep).toBeLessThanOrEqual(128 * 1024);
  });
});
