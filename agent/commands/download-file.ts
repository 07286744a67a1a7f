// download_file / downloadFile: writes a file from the master's FileReader onto the worker block by block,
// as buildbot-worker's WorkerFileDownloadCommand does, with its messages and rc. Unlike buildbot-worker the
// blocks go to a temp file that replaces the destination only once complete (agent/transfer/atomic-file.ts):
// an interrupt, maxsize, a lost connection, a full disk or a kill leaves the old file, never part of the new.

import { argInt, argOptInt, argPresent, argPath } from './args.js';
import type { CommandDefinition, CommandEnv, CommandIO, RemoteReader, WorkerCommand } from './types.js';
import { TransferState, maxsizeArg } from './upload-file.js';
import { errorMessage } from '../errors.js';
import { NotRegularFileError } from '../fs/file-kind.js';
import { makedirs } from '../fs/makedirs.js';
import { PyError } from '../py/exceptions.js';
import { isSystemError } from '../py/os-error.js';
import { exists, pathDirname } from '../py/os-path.js';
import { openFileSink } from '../transfer/atomic-file.js';
import type { FileSink } from '../transfer/atomic-file.js';
import { WriteBehind } from '../transfer/write-behind.js';
import { TempFileJournal } from '../transfer/temp-journal.js';
import { transferPath } from './relative-args.js';

class DownloadFile implements WorkerCommand {
  private readonly state = new TransferState();
  private maxsizeReached = false;

  constructor(
    private readonly path: string,
    private readonly blocksize: number,
    private readonly maxsize: number | null,
    private readonly mode: number | null,
    private readonly io: CommandIO,
    private readonly env: CommandEnv,
  ) {}

  async run(): Promise<void> {
    const { state, io, path } = this;
    const reader: RemoteReader = io.reader();

    // outside buildbot-worker's try: a parent that cannot be made fails the command (no rc)
    const dirname = pathDirname(path);
    if (!exists(dirname)) makedirs(dirname);

    let sink: FileSink | null = null;
    try {
      sink = await openFileSink(path, {
        mode: this.mode,
        journal: new TempFileJournal(this.env.basedir, this.env.logger),
        onInPlace: (why) => this.env.logger.warn(`download_file: ${why}`),
      });
    } catch (err) {
      // only OSError is caught there; anything else fails the command
      if (!isSystemError(err) && !(err instanceof NotRegularFileError)) throw err;
      state.stderr = `Cannot open file '${path}' for download`;
      // buildbot-worker would wait for a reader of a FIFO for ever: say why it is refused
      if (err instanceof NotRegularFileError) state.stderr += `: it is ${err.kind}, not a regular file`;
      state.rc = 1;
    }

    let failure: { error: unknown } | null = null;
    try {
      await this.loop(sink, reader);
    } catch (error) {
      failure = { error };
    }
    try {
      await reader.close();
    } catch (err) {
      this.env.logger.warn(`download_file: error while trying to close reader: ${errorMessage(err)}`);
    }
    // finished(): the file is complete only at EOF; anything else keeps the old one. A failure to finish it
    // (fsync, close, rename) fails the command before rc is sent, as buildbot-worker's close error does.
    if (sink) {
      if (failure === null && !state.interrupted && !this.maxsizeReached) await sink.commit();
      else await sink.discard();
    }
    state.report(io);
    if (failure) throw failure.error;
  }

  /**
   * _readBlock / _writeData until EOF (an empty or null answer), interrupt, or maxsize. buildbot-worker asks for
   * one block and waits for it; here up to READ_WINDOW_BYTES of blocks are asked for at once (the master's
   * FileReader answers them in order from one file position), each of min(blocksize, what maxsize leaves), and
   * the blocks are written in order, WRITE_BEHIND_BYTES at a time, while the next ones are on their way. A write
   * error fails the command (with Python's message); nothing after it is written.
   */
  private async loop(sink: FileSink | null, reader: RemoteReader): Promise<void> {
    const { state } = this;
    const reads = new ReadAhead(reader, this.blocksize, this.maxsize);
    const out = new WriteBehind((d) => sink!.write(d), WRITE_BEHIND_BYTES);
    try {
      for (;;) {
        if (state.interrupted || sink === null) break;
        const next = reads.next();
        if (next === null) {
          state.maxSizeReached(this.path);
          this.maxsizeReached = true;
          break;
        }
        const data = await next;
        // msgpack masters 3.7 answer every read with None (a master bug): that reads as EOF, an empty file
        if (!data || data.length === 0) break;
        // buildbot-worker asserts the master never sends more than asked
        reads.received(data.length);
        await out.push(data);
      }
      // what was received is written, also after an interrupt or maxsize (a file written in place keeps it)
      await out.flush();
    } catch (err) {
      // the first error is the command's; a write still in flight finishes first, its own error aside
      await out.abandon();
      throw err;
    } finally {
      reads.abandon();
    }
  }

  interrupt(): void {
    this.state.interrupt();
  }
}

/** Received bytes gathered into one file write. */
const WRITE_BEHIND_BYTES = 256 * 1024;

/**
 * Bytes asked of the master's FileReader and not yet answered: 64 of FileDownload's 16 KiB blocks. Each answer
 * still costs the master one call; asking ahead keeps it busy instead of waiting for the worker's next ask.
 */
export const READ_WINDOW_BYTES = 1024 * 1024;

/**
 * The reads asked ahead, in order, never past maxsize. Like TCP's slow start, one read is asked first and the
 * number ahead doubles with each full block, so a small file costs the master only a few reads past its end.
 */
class ReadAhead {
  private readonly asked: { answer: Promise<Uint8Array | null>; length: number }[] = [];
  /** Reads that may be unanswered at once (grows up to READ_WINDOW_BYTES). */
  private depth = 1;
  /** Bytes asked for and not yet received (including the block `next` handed out last). */
  private outstanding = 0;
  private current = 0;
  private received_ = 0;

  constructor(
    private readonly reader: RemoteReader,
    private readonly blocksize: number,
    private readonly maxsize: number | null,
  ) {}

  /** The next block's answer, or null when maxsize is used up (nothing asked is unanswered). */
  next(): Promise<Uint8Array | null> | null {
    this.fill();
    const first = this.asked.shift();
    if (!first) return null;
    this.current = first.length;
    return first.answer;
  }

  /** Counts the answer `next` gave: more than maxsize allows is buildbot-worker's AssertionError. */
  received(n: number): void {
    this.received_ += n;
    if (n >= this.current && this.current > 0) this.depth *= 2;
    this.outstanding -= this.current;
    this.current = 0;
    if (this.maxsize !== null && this.received_ > this.maxsize) throw new PyError('AssertionError', '', 'E_READ_TOO_MUCH');
  }

  /** Reads still unanswered when the loop ends (EOF, interrupt, an error) are answered but never used. */
  abandon(): void {
    for (const a of this.asked.splice(0)) a.answer.catch(() => undefined);
  }

  private fill(): void {
    // refilled once half of what may be ahead was used: the asks then leave together (one socket write for
    // several calls) and the master reads and answers them in a batch
    const limit = Math.max(1, Math.min(this.depth, Math.floor(READ_WINDOW_BYTES / this.blocksize)));
    if (this.asked.length > 0 && this.asked.length > limit / 2) return;
    while (this.asked.length < limit) {
      // as buildbot-worker: min(blocksize, what maxsize leaves), counting what is already asked for
      let length = this.blocksize;
      if (this.maxsize !== null) length = Math.min(length, this.maxsize - this.received_ - this.outstanding);
      if (length <= 0) return;
      const answer = this.reader.read(length);
      answer.catch(() => undefined); // reported when its turn comes
      this.asked.push({ answer, length });
      this.outstanding += length;
    }
  }
}

export const downloadFileCommand: CommandDefinition = {
  names: ['download_file', 'downloadFile'],
  // buildbot-worker also requires 'reader', which travels in CommandIO here (see upload_file)
  requiredArgs: ['path', 'blocksize'],
  relativeArgs: transferPath('workerdest'),
  create(args, io, env) {
    argPresent(args, 'mode');
    return new DownloadFile(argPath(args, 'path', env), argInt(args, 'blocksize'), maxsizeArg(args), argOptInt(args, 'mode') ?? null, io, env);
  },
};
