// Checks upload_file, upload_directory and download_file against buildbot-worker's transfer.py: block sizes,
// maxsize, interrupt, the order of rc / stderr and which master calls are made.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs, CommandDefinition, CommandEnv, CommandIO, RemoteReader, RemoteWriter } from '../../agent/commands/types.js';
import type { StatusValue } from '../../agent/output/types.js';
import { downloadFileCommand, READ_WINDOW_BYTES } from '../../agent/commands/download-file.js';
import { DIRECTORY_WRITE_BYTES, directoryWriteBytes, uploadDirectoryCommand } from '../../agent/commands/upload-directory.js';
import { MAX_BLOCK_BYTES, uploadFileCommand } from '../../agent/commands/upload-file.js';
import type { Logger } from '../../agent/log.js';
import { openTarStream } from '../../agent/transfer/tar.js';
import { journalDir } from '../../agent/transfer/temp-journal.js';
import { runIsolated } from './fs-isolated.js';
import { currentPlatform } from '../../platforms/index.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

type Event = ['text', string, string] | ['status', string, StatusValue];
type Call = [string, ...unknown[]];

/** A master-side FileWriter that records calls; `gate` makes write() wait, `fail` makes a method reject. */
class FakeWriter implements RemoteWriter {
  maxWriteBytes?: number;
  calls: Call[] = [];
  data: Buffer[] = [];
  fail: Partial<Record<'write' | 'close' | 'utime' | 'unpack', Error>> = {};
  gate: Promise<void> | null = null;
  onWrite: (() => void) | null = null;

  async write(data: Uint8Array): Promise<void> {
    this.calls.push(['write', data.length]);
    this.data.push(Buffer.from(data));
    this.onWrite?.();
    if (this.gate) await this.gate;
    if (this.fail.write) throw this.fail.write;
  }
  async close(): Promise<void> {
    this.calls.push(['close']);
    if (this.fail.close) throw this.fail.close;
  }
  async utime(a: number, m: number): Promise<void> {
    this.calls.push(['utime', a, m]);
    if (this.fail.utime) throw this.fail.utime;
  }
  async unpack(): Promise<void> {
    this.calls.push(['unpack']);
    if (this.fail.unpack) throw this.fail.unpack;
  }
}

/** A master-side FileReader serving `content` (or a scripted list of answers). */
class FakeReader implements RemoteReader {
  calls: Call[] = [];
  private pos = 0;
  answers: (Uint8Array | null)[] | null = null;
  gate: Promise<void> | null = null;
  onRead: (() => void) | null = null;
  failClose: Error | null = null;
  constructor(private readonly content: Buffer = Buffer.alloc(0)) {}

  async read(length: number): Promise<Uint8Array | null> {
    this.calls.push(['read', length]);
    this.onRead?.();
    if (this.gate) await this.gate;
    if (this.answers) return this.answers.shift() ?? null;
    const out = this.content.subarray(this.pos, this.pos + length);
    this.pos += out.length;
    return out;
  }
  async close(): Promise<void> {
    this.calls.push(['close']);
    if (this.failClose) throw this.failClose;
  }
}

interface Harness {
  io: CommandIO;
  events: Event[];
  writer: FakeWriter;
  reader: FakeReader;
  warnings: string[];
  environ: Record<string, string>;
}

function harness(reader = new FakeReader()): Harness {
  const events: Event[] = [];
  const writer = new FakeWriter();
  const warnings: string[] = [];
  const io: CommandIO = {
    text: (stream, text) => void events.push(['text', stream, text]),
    log: () => {
      throw new Error('no logs expected');
    },
    status: (key, value) => void events.push(['status', key, value]),
    stepEnvironment: () => {},
    backpressureMs: () => 0,
    writer: () => writer,
    reader: () => reader,
  };
  return { io, events, writer, reader, warnings, environ: { ...(process.env as Record<string, string>) } };
}

function envFor(h: Harness): CommandEnv {
  const logger: Logger = { info() {}, debug() {}, error: (m) => void h.warnings.push(m), warn: (m) => void h.warnings.push(m) };
  return { basedir: tmp, environ: h.environ, platform: currentPlatform(), logger, now: () => Date.now() / 1000 };
}

function start(def: CommandDefinition, args: CommandArgs, h: Harness) {
  return def.create(args, h.io, envFor(h));
}

let tmp: string;
let file10k: string;
let content10k: Buffer;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'transfer-'));
  file10k = join(tmp, 'ten-k.bin');
  content10k = randomBytes(10000);
  writeFileSync(file10k, content10k);
  utimesSync(file10k, 1700000000.123456, 1700000100.987654);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Temp files a download left in `dir`. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('.bbagent-tmp-'));
}

/** Rejects if `p` is not settled within `ms` (a command that used to wait for ever). */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a FIFO for writing and closes it: a reader waiting in open() (old code) goes on. Nothing when there is none. */
function releaseFifoReader(f: string): void {
  try {
    closeSync(openSync(f, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
  } catch {
    // ENXIO: nobody reads it
  }
}

const up = (path: string, extra: CommandArgs = {}): CommandArgs => ({ path, blocksize: 4096, maxsize: null, workdir: 'wd', workersrc: 'x', ...extra });

describe('upload_file', () => {
  it('is registered under both names with its required args', () => {
    expect(uploadFileCommand.names).toEqual(['upload_file', 'uploadFile']);
    expect(uploadFileCommand.requiredArgs).toEqual(['path', 'blocksize']);
  });

  it('sends the file in blocksize blocks, then closes; header then rc 0', async () => {
    const h = harness();
    await start(uploadFileCommand, up(file10k), h).run();
    expect(h.writer.calls).toEqual([['write', 4096], ['write', 4096], ['write', 1808], ['close']]);
    expect(Buffer.concat(h.writer.data).equals(content10k)).toBe(true);
    expect(h.events).toEqual([
      ['text', 'header', `sending ${file10k}\n`],
      ['status', 'rc', 0],
    ]);
  });

  it('keepstamp sends utime(atime, mtime) after close, with python float times', async () => {
    const h = harness();
    await start(uploadFileCommand, up(file10k, { keepstamp: true }), h).run();
    const [a, m] = JSON.parse(
      execFileSync('python3', ['-c', 'import os,sys,json; print(json.dumps([os.path.getatime(sys.argv[1]), os.path.getmtime(sys.argv[1])]))', file10k], {
        encoding: 'utf8',
      }),
    ) as [number, number];
    expect(h.writer.calls.slice(-2)).toEqual([['close'], ['utime', a, m]]);
  });

  it('a file that cannot be opened: header, close, rc 1, stderr', async () => {
    for (const p of [join(tmp, 'missing'), tmp]) {
      const h = harness();
      await start(uploadFileCommand, up(p), h).run();
      expect(h.writer.calls).toEqual([['close']]);
      expect(h.events).toEqual([
        ['text', 'header', `sending ${p}\n`],
        ['status', 'rc', 1],
        ['text', 'stderr', `Cannot open file '${p}' for upload`],
      ]);
    }
  });

  it('a FIFO or a device (also through a link) is refused at once: rc 1, stderr naming it and its kind', async () => {
    const fifo = join(tmp, 'up.fifo');
    execFileSync('mkfifo', [fifo]);
    const zeroLink = join(tmp, 'zero-link');
    symlinkSync('/dev/zero', zeroLink);
    try {
      for (const [p, kind] of [
        [fifo, 'a FIFO'],
        [zeroLink, 'a character device'],
        ['/dev/null', 'a character device'],
      ]) {
        const h = harness();
        // buildbot-worker waits for a writer of the FIFO for ever, and reads /dev/zero without end
        await within(5000, start(uploadFileCommand, up(p!), h).run());
        expect(h.writer.calls).toEqual([['close']]);
        expect(h.events).toEqual([
          ['text', 'header', `sending ${p}\n`],
          ['status', 'rc', 1],
          ['text', 'stderr', `Cannot open file '${p}' for upload: it is ${kind}, not a regular file`],
        ]);
      }
    } finally {
      releaseFifoReader(fifo);
    }
  });

  it('keepstamp on a missing file sends no utime', async () => {
    const h = harness();
    await start(uploadFileCommand, up(join(tmp, 'missing'), { keepstamp: true }), h).run();
    expect(h.writer.calls).toEqual([['close']]);
  });

  it('maxsize truncates with an error (also when the file is exactly maxsize)', async () => {
    for (const [maxsize, writes] of [
      [5000, [4096, 904]],
      [10000, [4096, 4096, 1808]],
    ] as const) {
      const h = harness();
      await start(uploadFileCommand, up(file10k, { maxsize }), h).run();
      expect(h.writer.calls).toEqual([...writes.map((n) => ['write', n]), ['close']]);
      expect(h.events.slice(1)).toEqual([
        ['status', 'rc', 1],
        ['text', 'stderr', `Maximum filesize reached, truncating file '${file10k}'`],
      ]);
    }
    const h = harness();
    await start(uploadFileCommand, up(file10k, { maxsize: 10001 }), h).run();
    expect(h.events.slice(1)).toEqual([['status', 'rc', 0]]);
  });

  it('interrupt stops before the next block: close, rc 1, no stderr', async () => {
    const h = harness();
    let release!: () => void;
    h.writer.gate = new Promise((r) => (release = r));
    const cmd = start(uploadFileCommand, up(file10k), h);
    h.writer.onWrite = () => {
      cmd.interrupt();
      cmd.interrupt();
      release();
    };
    await cmd.run();
    expect(h.writer.calls).toEqual([['write', 4096], ['close']]);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 1]]);
  });

  it('a failed write fails the command after close and rc 1', async () => {
    const h = harness();
    const boom = Object.assign(new Error('remote write failed'), { pyType: 'RuntimeError' });
    h.writer.fail.write = boom;
    h.writer.fail.close = new Error('ignored');
    await expect(start(uploadFileCommand, up(file10k, { keepstamp: true }), h).run()).rejects.toBe(boom);
    expect(h.writer.calls).toEqual([['write', 4096], ['close']]);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 1]]);
    expect(h.warnings.join()).toContain('ignored');
  });

  it('a failed close fails the command with rc unchanged, no utime', async () => {
    const h = harness();
    const boom = new Error('close failed');
    h.writer.fail.close = boom;
    await expect(start(uploadFileCommand, up(file10k, { keepstamp: true }), h).run()).rejects.toBe(boom);
    expect(h.writer.calls.at(-1)).toEqual(['close']);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 0]]);
  });

  it('a failed utime (msgpack master bug) fails the command after rc 0', async () => {
    const h = harness();
    const boom = new Error('FileWriter.remote_utime() takes 2 positional arguments but 3 were given');
    h.writer.fail.utime = boom;
    await expect(start(uploadFileCommand, up(file10k, { keepstamp: true }), h).run()).rejects.toBe(boom);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 0]]);
  });

  it('needs maxsize present (None is fine) and an integer blocksize', () => {
    const h = harness();
    expect(() => start(uploadFileCommand, { path: file10k, blocksize: 10 }, h)).toThrow(/maxsize/);
    expect(() => start(uploadFileCommand, { path: file10k, blocksize: 'x', maxsize: null }, h)).toThrow(/blocksize/);
  });
});

describe('upload_directory', () => {
  let dir: string;
  beforeAll(() => {
    dir = join(tmp, 'updir');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'a.txt'), 'a\n');
    writeFileSync(join(dir, 'sub', 'b.txt'), 'b\n');
    writeFileSync(join(dir, 'sub', 'big.bin'), randomBytes(200_000));
  });

  const updir = (extra: CommandArgs = {}): CommandArgs => ({ path: dir, blocksize: 16384, maxsize: null, compress: null, ...extra });

  it('is registered under both names', () => {
    expect(uploadDirectoryCommand.names).toEqual(['upload_directory', 'uploadDirectory']);
    expect(uploadDirectoryCommand.requiredArgs).toEqual(['path', 'blocksize']);
  });

  for (const compress of [null, 'gz', 'bz2']) {
    it(`streams the archive in full writes as large as the writer takes, then unpacks (compress=${String(compress)})`, async () => {
      const h = harness();
      h.writer.maxWriteBytes = 65536;
      await start(uploadDirectoryCommand, updir({ compress }), h).run();
      const writes = h.writer.calls.filter((c) => c[0] === 'write').map((c) => c[1] as number);
      expect(writes.length).toBeGreaterThan(compress === null ? 3 : 2);
      expect(writes.slice(0, -1).every((n) => n === 65536)).toBe(true);
      expect(writes.at(-1)!).toBeLessThanOrEqual(65536);
      expect(h.writer.calls.at(-1)).toEqual(['unpack']);
      expect(h.writer.calls.some((c) => c[0] === 'close')).toBe(false);
      expect(h.events).toEqual([
        ['text', 'header', `sending ${dir}\n`],
        ['status', 'rc', 0],
      ]);
      const sent = Buffer.concat(h.writer.data);
      const direct: Buffer[] = [];
      for await (const c of await openTarStream(dir, compress, { host: currentPlatform() })) direct.push(c);
      expect(sent.equals(Buffer.concat(direct))).toBe(true);
      // the master extracts it
      const tarFile = join(tmp, `sent-${String(compress)}.tar`);
      writeFileSync(tarFile, sent);
      const dest = join(tmp, `dest-${String(compress)}`);
      mkdirSync(dest);
      const mode = compress ? `r|${compress}` : 'r';
      execFileSync('python3', ['-c', 'import tarfile,sys; tarfile.open(sys.argv[1], sys.argv[3]).extractall(sys.argv[2])', tarFile, dest, mode]);
      expect(readFileSync(join(dest, 'sub', 'big.bin')).equals(readFileSync(join(dir, 'sub', 'big.bin')))).toBe(true);
    });
  }

  it("writes at least the master's blocksize and DIRECTORY_WRITE_BYTES, at most what the writer carries", () => {
    const w = new FakeWriter();
    expect(directoryWriteBytes(16384, w)).toBe(DIRECTORY_WRITE_BYTES);
    expect(directoryWriteBytes(2 * DIRECTORY_WRITE_BYTES, w)).toBe(2 * DIRECTORY_WRITE_BYTES);
    expect(directoryWriteBytes(2 ** 40, w)).toBe(MAX_BLOCK_BYTES);
    w.maxWriteBytes = 1000;
    expect(directoryWriteBytes(16384, w)).toBe(1000);
    // buildbot-worker sends nothing then and says the maximum size was reached
    expect(directoryWriteBytes(0, w)).toBe(0);
  });

  it('blocksize 0: nothing sent, maximum size reached, unpacked (as buildbot-worker)', async () => {
    const h = harness();
    await start(uploadDirectoryCommand, updir({ blocksize: 0 }), h).run();
    expect(h.writer.calls).toEqual([['unpack']]);
    expect(h.events.slice(1)).toEqual([
      ['status', 'rc', 1],
      ['text', 'stderr', `Maximum filesize reached, truncating file '${dir}'`],
    ]);
  });

  it('a missing directory fails the command with nothing sent', async () => {
    const h = harness();
    const missing = join(tmp, 'no-dir');
    await expect(start(uploadDirectoryCommand, updir({ path: missing }), h).run()).rejects.toMatchObject({
      pyType: 'FileNotFoundError',
      message: `[Errno 2] No such file or directory: '${missing}'`,
    });
    expect(h.events).toEqual([]);
    expect(h.writer.calls).toEqual([]);
  });

  it('maxsize truncates (counting compressed bytes), then still unpacks', async () => {
    const h = harness();
    h.writer.maxWriteBytes = 512;
    await start(uploadDirectoryCommand, updir({ compress: 'gz', maxsize: 1000, blocksize: 512 }), h).run();
    expect(h.writer.calls).toEqual([['write', 512], ['write', 488], ['unpack']]);
    expect(h.events.slice(1)).toEqual([
      ['status', 'rc', 1],
      ['text', 'stderr', `Maximum filesize reached, truncating file '${dir}'`],
    ]);
  });

  it('a failed unpack sets rc 1 and fails the command', async () => {
    const h = harness();
    const boom = new Error('tarfile.ReadError');
    h.writer.fail.unpack = boom;
    await expect(start(uploadDirectoryCommand, updir(), h).run()).rejects.toBe(boom);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 1]]);
  });

  it('a failed write fails the command without unpack (rc stays 0, as in buildbot-worker)', async () => {
    const h = harness();
    const boom = new Error('write failed');
    h.writer.fail.write = boom;
    h.writer.maxWriteBytes = 16384;
    await expect(start(uploadDirectoryCommand, updir({ compress: 'bz2' }), h).run()).rejects.toBe(boom);
    expect(h.writer.calls).toEqual([['write', 16384]]);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 0]]);
  });

  it('an archive error midway fails the command: no unpack, no rc', async () => {
    const shrinking = join(tmp, 'shrinking');
    mkdirSync(shrinking);
    writeFileSync(join(shrinking, 'f.bin'), randomBytes(1024 * 1024));
    const h = harness();
    h.writer.maxWriteBytes = 1024;
    let writes = 0;
    h.writer.onWrite = () => {
      if (++writes === 3) truncateSync(join(shrinking, 'f.bin'), 10);
    };
    await expect(start(uploadDirectoryCommand, updir({ path: shrinking, blocksize: 1024 }), h).run()).rejects.toMatchObject({
      pyType: 'OSError',
      message: 'unexpected end of data',
    });
    expect(h.writer.calls.some((c) => c[0] === 'unpack' || c[0] === 'close')).toBe(false);
    expect(h.events).toEqual([['text', 'header', `sending ${shrinking}\n`]]);
  });

  it('interrupt stops the stream, unpacks, rc 1', async () => {
    const h = harness();
    h.writer.maxWriteBytes = 1024;
    const cmd = start(uploadDirectoryCommand, updir({ blocksize: 1024 }), h);
    h.writer.onWrite = () => cmd.interrupt();
    await cmd.run();
    expect(h.writer.calls).toEqual([['write', 1024], ['unpack']]);
    expect(h.events.slice(1)).toEqual([['status', 'rc', 1]]);
  });

  it('bz2 without bzip2 fails with a clear error, nothing sent', async () => {
    const h = harness();
    // the worker's environment decides, not the agent's own
    h.environ.PATH = join(tmp, 'no-bin');
    await expect(start(uploadDirectoryCommand, updir({ compress: 'bz2' }), h).run()).rejects.toMatchObject({
      message: 'bz2 compression needs the bzip2 program on this worker',
      code: 'E_NO_BZIP2',
    });
    expect(h.events).toEqual([]);
  });

  it('needs compress present', () => {
    expect(() => start(uploadDirectoryCommand, { path: dir, blocksize: 10, maxsize: null }, harness())).toThrow(/compress/);
  });
});

describe('download_file', () => {
  const down = (path: string, extra: CommandArgs = {}): CommandArgs => ({
    path,
    blocksize: 4096,
    maxsize: null,
    mode: null,
    workdir: 'w',
    workerdest: 'x',
    ...extra,
  });

  it('is registered under both names', () => {
    expect(downloadFileCommand.names).toEqual(['download_file', 'downloadFile']);
    expect(downloadFileCommand.requiredArgs).toEqual(['path', 'blocksize']);
  });

  it('makes the parents, writes what the reader gives, applies mode, closes; rc 0 and no header', async () => {
    const h = harness(new FakeReader(content10k));
    const p = join(tmp, 'dl', 'a', 'b', 'file.bin');
    await start(downloadFileCommand, down(p, { mode: 0o640 }), h).run();
    expect(readFileSync(p).equals(content10k)).toBe(true);
    expect(statSync(p).mode & 0o777).toBe(0o640);
    // blocks of blocksize, asked ahead: 1, then 2, then up to 4 (buildbot-worker: 4 reads, one at a time)
    expect(h.reader.calls).toEqual([...Array<Call>(6).fill(['read', 4096]), ['close']]);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it('reads ahead up to READ_WINDOW_BYTES, answers used in order', async () => {
    const content = randomBytes(READ_WINDOW_BYTES * 3);
    const r = new FakeReader(content);
    let most = 0;
    let unanswered = 0;
    r.onRead = () => {
      unanswered++;
      most = Math.max(most, unanswered);
      // answered on the next turn of the event loop, as a master's answer would be
      r.gate = new Promise((resolve) => setImmediate(resolve)).then(() => void unanswered--);
    };
    const h = harness(r);
    const p = join(tmp, 'dl', 'ahead.bin');
    await start(downloadFileCommand, down(p), h).run();
    expect(readFileSync(p).equals(content)).toBe(true);
    // one at a time would be 1; the window grows by doubling and never passes READ_WINDOW_BYTES
    expect(most).toBeGreaterThanOrEqual(64);
    expect(most).toBeLessThanOrEqual(READ_WINDOW_BYTES / 4096);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it('maxsize counts the reads asked ahead: never asks past it; a shorter file is whole (rc 0)', async () => {
    const h = harness(new FakeReader(content10k));
    const p = join(tmp, 'dl', 'under-max.bin');
    await start(downloadFileCommand, down(p, { maxsize: 12000 }), h).run();
    const asked = h.reader.calls.filter((c) => c[0] === 'read').map((c) => c[1] as number);
    // 4096; 4096 + 3808 (= what maxsize leaves); then, after the short answer, 12000 - 10000 = 2000 -> EOF
    expect(asked).toEqual([4096, 4096, 3808, 2000]);
    expect(readFileSync(p).equals(content10k)).toBe(true);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it('a None answer reads as EOF: empty file, rc 0 (msgpack master bug)', async () => {
    const r = new FakeReader();
    r.answers = [null];
    const h = harness(r);
    const p = join(tmp, 'dl', 'empty.txt');
    writeFileSync(p, 'old content');
    await start(downloadFileCommand, down(p), h).run();
    expect(readFileSync(p).length).toBe(0);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it("maxsize: buildbot-worker's rc 1 and stderr, but the old file stays whole and no temp file is left", async () => {
    const h = harness(new FakeReader(content10k));
    const p = join(tmp, 'dl', 'trunc.bin');
    writeFileSync(p, 'old content');
    await start(downloadFileCommand, down(p, { maxsize: 5000 }), h).run();
    expect(h.reader.calls).toEqual([['read', 4096], ['read', 904], ['close']]);
    expect(readFileSync(p, 'utf8')).toBe('old content');
    expect(h.events).toEqual([
      ['status', 'rc', 1],
      ['text', 'stderr', `Maximum filesize reached, truncating file '${p}'`],
    ]);
    expect(leftovers(join(tmp, 'dl'))).toEqual([]);
  });

  it('more data than asked with a maxsize is an AssertionError', async () => {
    const r = new FakeReader();
    r.answers = [Buffer.alloc(200)];
    const h = harness(r);
    await expect(start(downloadFileCommand, down(join(tmp, 'dl', 'x.bin'), { maxsize: 100 }), h).run()).rejects.toMatchObject({
      pyType: 'AssertionError',
    });
    expect(h.reader.calls.at(-1)).toEqual(['close']);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it('a file that cannot be opened: rc 1 and stderr, reader closed', async () => {
    const h = harness(new FakeReader(content10k));
    const p = join(tmp, 'dl');
    await start(downloadFileCommand, down(p), h).run();
    expect(h.reader.calls).toEqual([['close']]);
    expect(h.events).toEqual([
      ['status', 'rc', 1],
      ['text', 'stderr', `Cannot open file '${p}' for download`],
    ]);
  });

  it('a parent that cannot be made fails the command (python makedirs error), no rc', async () => {
    const h = harness(new FakeReader(content10k));
    const parent = join(file10k, 'sub');
    await expect(start(downloadFileCommand, down(join(parent, 'f')), h).run()).rejects.toMatchObject({
      pyType: 'NotADirectoryError',
      message: `[Errno 20] Not a directory: '${parent}'`,
    });
    expect(h.events).toEqual([]);
  });

  it('interrupt stops before the next read: rc 1, reader closed; the old file stays, no temp file', async () => {
    const h = harness(new FakeReader(content10k));
    const p = join(tmp, 'dl', 'int.bin');
    writeFileSync(p, 'old content');
    const cmd = start(downloadFileCommand, down(p), h);
    h.reader.onRead = () => cmd.interrupt();
    await cmd.run();
    expect(h.reader.calls).toEqual([['read', 4096], ['close']]);
    expect(h.events).toEqual([['status', 'rc', 1]]);
    expect(readFileSync(p, 'utf8')).toBe('old content');
    expect(leftovers(join(tmp, 'dl'))).toEqual([]);
  });

  it('while blocks arrive the destination is the old file; the new one replaces it whole at the end', async () => {
    const h = harness(new FakeReader(content10k));
    const dir = join(tmp, 'dl', 'midway');
    mkdirSync(dir);
    const p = join(dir, 'f.bin');
    writeFileSync(p, 'old content');
    chmodSync(p, 0o640);
    let seen: { dest: string; temps: number; journal: number } | null = null;
    h.reader.onRead = () => {
      if (h.reader.calls.length === 3) {
        seen = { dest: readFileSync(p, 'utf8'), temps: leftovers(dir).length, journal: readdirSync(journalDir(tmp)).length };
      }
    };
    await start(downloadFileCommand, down(p), h).run();
    expect(seen).toEqual({ dest: 'old content', temps: 1, journal: 1 });
    expect(readFileSync(p).equals(content10k)).toBe(true);
    expect(statSync(p).mode & 0o777).toBe(0o640); // open('wb') keeps an existing file's mode
    expect(leftovers(dir)).toEqual([]);
    expect(readdirSync(journalDir(tmp))).toEqual([]);
  });

  it('a link is written through (the link stays, its target gets the content), as open() does', async () => {
    const h = harness(new FakeReader(content10k));
    const dir = join(tmp, 'dl', 'link');
    mkdirSync(dir);
    writeFileSync(join(dir, 'target'), 'old');
    symlinkSync('target', join(dir, 'link'));
    symlinkSync('missing-target', join(dir, 'dangling'));
    await start(downloadFileCommand, down(join(dir, 'link')), h).run();
    await start(downloadFileCommand, down(join(dir, 'dangling')), harness(new FakeReader(Buffer.from('new')))).run();
    expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'target')).equals(content10k)).toBe(true);
    expect(readFileSync(join(dir, 'missing-target'), 'utf8')).toBe('new');
    expect(leftovers(dir)).toEqual([]);
  });

  it('a read that fails (the connection is gone) fails the command; the old file stays, no temp file', async () => {
    const r = new FakeReader(content10k);
    const p = join(tmp, 'dl', 'lost.bin');
    writeFileSync(p, 'old content');
    const lost = new Error('connection lost');
    r.onRead = () => {
      if (r.calls.length === 2) throw lost;
    };
    const h = harness(r);
    await expect(start(downloadFileCommand, down(p), h).run()).rejects.toBe(lost);
    expect(readFileSync(p, 'utf8')).toBe('old content');
    expect(leftovers(join(tmp, 'dl'))).toEqual([]);
  });

  it('a FIFO destination is refused at once (buildbot-worker waits for a reader for ever); a directory cannot be opened', async () => {
    const fifo = join(tmp, 'dl', 'dest.fifo');
    execFileSync('mkfifo', [fifo]);
    try {
      const h = harness(new FakeReader(content10k));
      await within(5000, start(downloadFileCommand, down(fifo), h).run());
      expect(h.events).toEqual([
        ['status', 'rc', 1],
        ['text', 'stderr', `Cannot open file '${fifo}' for download: it is a FIFO, not a regular file`],
      ]);
      expect(lstatSync(fifo).isFIFO()).toBe(true);
    } finally {
      releaseFifoReader(fifo);
    }
    const dir = join(tmp, 'dl', 'a-dir');
    mkdirSync(dir);
    const h = harness(new FakeReader(content10k));
    await start(downloadFileCommand, down(dir), h).run();
    expect(h.events).toEqual([
      ['status', 'rc', 1],
      ['text', 'stderr', `Cannot open file '${dir}' for download`],
    ]);
  });

  it('a writable file in a directory that takes no new file is written in place, as buildbot-worker does', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dl-readonly-dir-'));
    try {
      const dir = join(root, 'ro');
      mkdirSync(dir);
      const p = join(dir, 'f.txt');
      writeFileSync(p, 'old content');
      chmodSync(p, 0o666);
      chmodSync(dir, 0o555);
      chmodSync(root, 0o755);
      // root may create files anywhere: the child then runs as nobody
      const r = await runIsolated(
        `import { downloadFileCommand } from '../../agent/commands/download-file.js';
         if (process.getuid!() === 0) { process.setgid!(65534); process.setuid!(65534); }
         const events: unknown[] = [];
         const warnings: string[] = [];
         let sent = false;
         const reader = { read: async () => (sent ? null : ((sent = true), Buffer.from('new content'))), close: async () => undefined };
         const io = { text: (s: string, t: string) => events.push([s, t]), status: (k: string, v: unknown) => events.push([k, v]), reader: () => reader } as any;
         const logger = { info() {}, debug() {}, error() {}, warn: (m: string) => warnings.push(m) };
         const env = { basedir: ${JSON.stringify(root)}, environ: {}, platform: {}, logger, now: () => 0 } as any;
         downloadFileCommand
           .create({ path: ${JSON.stringify(p)}, blocksize: 100, maxsize: null, mode: null }, io, env)
           .run()
           .then(() => report({ events, warnings }), (e) => report({ error: String(e) }));`,
        10_000,
      );
      // (as nobody the journal under BASEDIR cannot be written either: a warning of its own)
      expect(r.value).toEqual({
        events: [['rc', 0]],
        warnings: expect.arrayContaining([`download_file: cannot create a temporary file beside ${p} (EACCES): writing it in place`]),
      });
      expect(readFileSync(p, 'utf8')).toBe('new content');
    } finally {
      chmodSync(join(root, 'ro'), 0o755);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a file the worker may not write is not replaced (Cannot open, as open() fails), even in a writable directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dl-readonly-file-'));
    try {
      const p = join(root, 'f.txt');
      writeFileSync(p, 'old content');
      chmodSync(p, 0o444);
      chmodSync(root, 0o777);
      // root may write anything: the child then runs as nobody
      const r = await runIsolated(
        `import { downloadFileCommand } from '../../agent/commands/download-file.js';
         if (process.getuid!() === 0) { process.setgid!(65534); process.setuid!(65534); }
         const events: unknown[] = [];
         const reader = { read: async () => Buffer.from('new content'), close: async () => undefined };
         const io = { text: (s: string, t: string) => events.push([s, t]), status: (k: string, v: unknown) => events.push([k, v]), reader: () => reader } as any;
         const logger = { info() {}, debug() {}, error() {}, warn() {} };
         const env = { basedir: ${JSON.stringify(root)}, environ: {}, platform: {}, logger, now: () => 0 } as any;
         downloadFileCommand
           .create({ path: ${JSON.stringify(p)}, blocksize: 100, maxsize: null, mode: null }, io, env)
           .run()
           .then(() => report(events), (e) => report({ error: String(e) }));`,
        10_000,
      );
      expect(r.value).toEqual([
        ['rc', 1],
        ['stderr', `Cannot open file '${p}' for download`],
      ]);
      expect(readFileSync(p, 'utf8')).toBe('old content');
      expect(readdirSync(root).filter((n) => n.startsWith('.bbagent-tmp-'))).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a device is written in place, as buildbot-worker does (/dev/null)', async () => {
    const h = harness(new FakeReader(content10k));
    await start(downloadFileCommand, down('/dev/null'), h).run();
    expect(h.events).toEqual([['status', 'rc', 0]]);
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
  });

  it.skipIf(!tmpfsSupport().ok)("a full disk (ENOSPC) fails with python's error; the old file stays, no temp file", async () => {
    const mnt = join(tmp, 'small-fs');
    mkdirSync(mnt);
    mountTmpfs(mnt, 64 * 1024);
    try {
      const p = join(mnt, 'f.bin');
      writeFileSync(p, 'old content');
      const h = harness(new FakeReader(randomBytes(256 * 1024)));
      await expect(start(downloadFileCommand, down(p), h).run()).rejects.toMatchObject({
        pyType: 'OSError',
        message: '[Errno 28] No space left on device',
      });
      expect(readFileSync(p, 'utf8')).toBe('old content');
      expect(readdirSync(mnt)).toEqual(['f.bin']);
    } finally {
      unmount(mnt);
    }
  });

  it("a failed write fails the command with python's error; reading stops soon after", async () => {
    const content = randomBytes(4 * READ_WINDOW_BYTES);
    const h = harness(new FakeReader(content));
    // /dev/full takes the open and refuses every write (ENOSPC)
    await expect(start(downloadFileCommand, down('/dev/full'), h).run()).rejects.toMatchObject({
      pyType: 'OSError',
      message: '[Errno 28] No space left on device',
    });
    // the first gathered write (256 KiB) fails while the next blocks arrive; the error stops the reads
    // (at most READ_WINDOW_BYTES ahead) before the end of the file, then the reader is closed
    const reads = h.reader.calls.filter((c) => c[0] === 'read').length;
    expect(reads).toBeLessThan(content.length / 4096);
    expect(h.reader.calls.at(-1)).toEqual(['close']);
    expect(h.events).toEqual([['status', 'rc', 0]]);
  });

  it('errors closing the reader are only logged', async () => {
    const h = harness(new FakeReader(Buffer.from('abc')));
    h.reader.failClose = new Error('close went wrong');
    await start(downloadFileCommand, down(join(tmp, 'dl', 'c.bin')), h).run();
    expect(h.events).toEqual([['status', 'rc', 0]]);
    expect(h.warnings.join()).toContain('close went wrong');
  });

  it('needs mode and maxsize present', () => {
    expect(() => start(downloadFileCommand, { path: '/x', blocksize: 1, maxsize: null }, harness())).toThrow(/mode/);
    expect(() => start(downloadFileCommand, { path: '/x', blocksize: 1, mode: null }, harness())).toThrow(/maxsize/);
  });
});
