// upload_file / uploadFile: sends one worker file to the master's FileWriter block by block, as
// buildbot-worker's WorkerFileUploadCommand does; the block loop and rc/stderr reporting are shared with
// upload_directory.

import { constants as fsConstants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { argBool, argInt, argOptInt, argPresent, argPath } from './args.js';
import type { CommandArgs, CommandDefinition, CommandEnv, CommandIO, RemoteWriter, WorkerCommand } from './types.js';
import { FileBlockReader } from '../fs/block-reader.js';
import type { BlockSource } from '../fs/block-reader.js';
import { errorMessage } from '../errors.js';
import { fsPath } from '../py/fsencoding.js';
import { timeFloat } from '../py/os.js';
import { NotRegularFileError } from '../fs/file-kind.js';
import { O_NONBLOCK } from '../fs/open-flags.js';
import { transferPath } from './relative-args.js';

/**
 * A master's blocksize above this is sent in blocks of this size (the same bytes, in more writes): each block is
 * held in memory, and Node refuses a file read over 2 GiB by aborting the process.
 */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;

/** rc / stderr / interrupt bookkeeping of buildbot-worker's TransferCommand. */
export class TransferState {
  rc = 0;
  stderr: string | null = null;
  interrupted = false;

  /** The loop notices it before its next block; rc becomes 1 (no stderr). */
  interrupt(): void {
    if (this.interrupted) return;
    this.rc = 1;
    this.interrupted = true;
  }

  /** TransferCommand.finished: ('rc', rc) then ('stderr', text) when set - also after an interrupt. */
  report(io: CommandIO): void {
    io.status('rc', this.rc);
    if (this.stderr) io.text('stderr', this.stderr);
  }

  maxSizeReached(path: string): void {
    if (this.stderr === null) {
      this.stderr = `Maximum filesize reached, truncating file '${path}'`;
      this.rc = 1;
    }
  }
}

/**
 * Bytes of blocks sent and not yet acknowledged by the master. buildbot-worker waits for each write's answer
 * before reading the next block, so every block costs a round trip; the master's FileWriter and
 * DirectoryWriter write synchronously in the order the calls arrive (one connection, answers in order), so
 * several may be on their way at once. 1 MiB keeps 64 of the DirectoryUpload's 16 KiB blocks or 4 of
 * FileUpload's 256 KiB in flight, and bounds the memory they hold.
 */
export const WRITE_WINDOW_BYTES = 1024 * 1024;

/**
 * The _loop/_writeBlock cycle: blocks of min(blocksize, remaining) bytes, until EOF, interrupt, or (with an error
 * in stderr) when maxsize is used up. Writes overlap (up to WRITE_WINDOW_BYTES unanswered); the function returns
 * once every write sent is answered, and throws the first failed write's error (no block is sent after a
 * failure is known; the ones already sent are not taken back).
 *
 * Each block is read before the previous one is sent, so the last block is known as such: it goes out only once
 * every earlier write is answered. Otherwise a PB master (Twisted leaves Nagle's algorithm on) holds its answer to
 * the last block until we acknowledge the answer before it, and with nothing more to send our kernel delays that
 * acknowledgement: 25-40 ms lost at the end of every upload, measured.
 */
export async function sendBlocks(
  state: TransferState,
  path: string,
  source: BlockSource | null,
  blocksize: number,
  maxsize: number | null,
  write: (data: Uint8Array) => Promise<void>,
): Promise<void> {
  const window = new WriteWindow(WRITE_WINDOW_BYTES);
  const size = Math.min(blocksize, MAX_BLOCK_BYTES);
  let remaining = maxsize;
  /** The next block; null at the end of the data; 'full' when maxsize is used up. */
  const readNext = async (): Promise<Uint8Array | null | 'full'> => {
    if (source === null) return null;
    const length = remaining === null ? size : Math.min(size, remaining);
    // note: a file of exactly maxsize bytes ends here too, as in buildbot-worker
    if (length <= 0) return 'full';
    const data = await source.read(length);
    if (data.length === 0) return null;
    if (remaining !== null) remaining -= data.length;
    return data;
  };
  try {
    let block = state.interrupted ? null : await readNext();
    while (block !== null && block !== 'full') {
      const next = await readNext();
      const last = next === null || next === 'full';
      if (last) await window.drain();
      if (state.interrupted || window.failed) break;
      const sent = block;
      // answered: the master has the bytes, nothing here refers to the block any more
      await window.add(
        write(sent).then(() => source?.release?.(sent)),
        sent.length,
      );
      if (last) await window.drain();
      block = next;
    }
    // told after the last write was answered, as buildbot-worker's next _writeBlock does
    if (block === 'full' && !state.interrupted && !window.failed) state.maxSizeReached(path);
  } finally {
    // also when the source failed: the writes already sent finish first (their errors then go unreported)
    await window.drain();
  }
  window.rethrow();
}

/** Writes sent and not yet answered, in order; `add` waits while more than `limit` bytes are unanswered. */
class WriteWindow {
  private readonly pending: { done: Promise<void>; bytes: number }[] = [];
  private bytes = 0;
  private failure: { error: unknown } | null = null;

  constructor(private readonly limit: number) {}

  get failed(): boolean {
    return this.failure !== null;
  }

  async add(write: Promise<void>, bytes: number): Promise<void> {
    // the first failure is kept (answers arrive in order); it is thrown once every write is answered
    const done = write.then(undefined, (error: unknown) => {
      this.failure ??= { error };
    });
    this.pending.push({ done, bytes });
    this.bytes += bytes;
    // each answer lets the next block go at once. Waiting for several answers before sending again stalled:
    // the master's answers are tiny, its socket has Nagle on, so the second one waited for our (delayed) ACK,
    // which goes out with our next block
    while (this.bytes > this.limit) await this.settleOldest();
  }

  async drain(): Promise<void> {
    while (this.pending.length > 0) await this.settleOldest();
  }

  rethrow(): void {
    if (this.failure) throw this.failure.error;
  }

  private async settleOldest(): Promise<void> {
    const first = this.pending.shift()!;
    this.bytes -= first.bytes;
    await first.done;
  }
}

class UploadFile implements WorkerCommand {
  private readonly state = new TransferState();

  constructor(
    private readonly path: string,
    private readonly blocksize: number,
    private readonly maxsize: number | null,
    private readonly keepstamp: boolean,
    private readonly io: CommandIO,
    private readonly env: CommandEnv,
  ) {}

  async run(): Promise<void> {
    const { state, io, path } = this;
    const writer: RemoteWriter = io.writer('file');
    let times: [number, number] | null = null;
    let fh: FileHandle | null = null;
    try {
      if (this.keepstamp) {
        const st = await stat(fsPath(path), { bigint: true });
        times = [timeFloat(st.atimeNs), timeFloat(st.mtimeNs)];
      }
      fh = await openForReading(path);
    } catch (err) {
      state.stderr = `Cannot open file '${path}' for upload`;
      if (err instanceof NotRegularFileError) state.stderr += `: it is ${err.kind}, not a regular file`;
      state.rc = 1;
    }

    io.text('header', `sending ${path}\n`);

    let failure: { error: unknown } | null = null;
    try {
      await sendBlocks(state, path, fh && new FileBlockReader(fh), this.blocksize, this.maxsize, (d) => writer.write(d));
    } catch (error) {
      failure = { error };
    }
    if (failure === null) {
      // _close_ok: close, then the timestamps (a failure here leaves rc as it is)
      try {
        await closeQuietly(fh);
        fh = null;
        await writer.close();
        // buildbot-worker would send utime(None, None) when the file could not even be stat'ed (the master then
        // fails); our writer takes numbers, so that case sends no utime and the step fails on rc 1 alone
        if (this.keepstamp && times) await writer.utime(times[0], times[1]);
      } catch (error) {
        failure = { error };
      }
    } else {
      // _close_err: rc 1, the master's close() is still called and its own errors ignored
      state.rc = 1;
      await closeQuietly(fh);
      try {
        await writer.close();
      } catch (err) {
        this.env.logger.warn(`upload_file: ignoring error from remote close(): ${errorMessage(err)}`);
      }
    }
    state.report(io);
    if (failure) throw failure.error;
  }

  interrupt(): void {
    this.state.interrupt();
  }
}

/**
 * open(path, 'rb'), refusing what is not a regular file. Opened non-blocking: a FIFO with no writer would
 * otherwise hold a thread-pool thread forever (buildbot-worker's whole reactor), and a device such as
 * /dev/zero would be read without end. Directories fail with EISDIR, as Python's open does.
 */
async function openForReading(path: string): Promise<FileHandle> {
  const fh = await open(fsPath(path), fsConstants.O_RDONLY | O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    if (!st.isFile()) throw new NotRegularFileError(path, st);
  } catch (err) {
    await closeQuietly(fh);
    throw err;
  }
  return fh;
}

async function closeQuietly(fh: FileHandle | null): Promise<void> {
  if (fh) await fh.close().catch(() => undefined);
}

/** Python's args['maxsize'] (present, int or None). */
export function maxsizeArg(args: CommandArgs): number | null {
  argPresent(args, 'maxsize');
  return argOptInt(args, 'maxsize') ?? null;
}

export const uploadFileCommand: CommandDefinition = {
  names: ['upload_file', 'uploadFile'],
  // buildbot-worker also requires 'writer'; here the writer comes through CommandIO, not the args (msgpack
  // masters never send one), so checking for it would reject every msgpack upload
  requiredArgs: ['path', 'blocksize'],
  relativeArgs: transferPath('workersrc'),
  create(args, io, env) {
    return new UploadFile(argPath(args, 'path', env), argInt(args, 'blocksize'), maxsizeArg(args), argBool(args, 'keepstamp', false), io, env);
  },
};
