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
   * _readBlock / _writeData until EOF (an empty or null answer), interrupt, or maxsize. Each block is written
   * while the next one is on its way: blocks are written in order, one at a time, and a write error still
   * fails the command (with Python's message) before anything after it is written. buildbot-worker writes
   * between reads; overlapping saves the file write's time on each of the master's round trips.
   */
  private async loop(sink: FileSink | null, reader: RemoteReader): Promise<void> {
    const { state } = this;
    let remaining = this.maxsize;
    let writing: Promise<void> | null = null;
    try {
      for (;;) {
        if (state.interrupted || sink === null) break;
        let length = this.blocksize;
        if (remaining !== null && length > remaining) length = remaining;
        if (length <= 0) {
          state.maxSizeReached(this.path);
          this.maxsizeReached = true;
          break;
        }
        const data = await reader.read(length);
        if (writing) {
          const w = writing;
          writing = null;
          await w;
        }
        // msgpack masters 3.7 answer every read with None (a master bug): that reads as EOF, an empty file
        if (!data || data.length === 0) break;
        if (remaining !== null) {
          remaining -= data.length;
          // buildbot-worker asserts the master never sends more than asked
          if (remaining < 0) throw new PyError('AssertionError', '', 'E_READ_TOO_MUCH');
        }
        writing = sink.write(data);
        // a failed write is reported after the read in flight; never as an unhandled rejection meanwhile
        writing.catch(() => undefined);
      }
    } catch (err) {
      // the first error is the command's; a write still in flight finishes first, its own error aside
      if (writing) await writing.catch(() => undefined);
      throw err;
    }
    if (writing) await writing;
  }

  interrupt(): void {
    this.state.interrupt();
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
