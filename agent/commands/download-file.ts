// download_file / downloadFile: writes a file from the master's FileReader onto the worker block by block,
// as buildbot-worker's WorkerFileDownloadCommand does.

import { chmod, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { argInt, argOptInt, argPresent, argPath } from './args.js';
import type { CommandDefinition, CommandEnv, CommandIO, RemoteReader, WorkerCommand } from './types.js';
import { TransferState, maxsizeArg } from './upload-file.js';
import { errorMessage } from '../errors.js';
import { PyError, isSystemError, toPyError } from '../fs/pyerrors.js';
import { exists, fsPath, makedirs, pathDirname } from '../fs/pyos.js';
import { transferPath } from './relative-args.js';

class DownloadFile implements WorkerCommand {
  private readonly state = new TransferState();

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
    if (!exists(dirname)) {
      try {
        makedirs(dirname);
      } catch (err) {
        throw toPyError(err, dirname);
      }
    }

    let fh: FileHandle | null = null;
    try {
      fh = await open(fsPath(path), 'w');
      // the file briefly has the umask's mode first, as with buildbot-worker
      if (this.mode !== null) await chmod(fsPath(path), this.mode);
    } catch (err) {
      // only OSError is caught there; anything else fails the command
      if (!isSystemError(err)) throw err;
      if (fh) await fh.close().catch(() => undefined);
      fh = null;
      state.stderr = `Cannot open file '${path}' for download`;
      state.rc = 1;
    }

    let failure: { error: unknown } | null = null;
    try {
      await this.loop(fh, reader);
    } catch (error) {
      failure = { error };
    }
    try {
      await reader.close();
    } catch (err) {
      this.env.logger.warn(`download_file: error while trying to close reader: ${errorMessage(err)}`);
    }
    // finished(): close the local file (an error there fails the command before rc is sent), then rc/stderr
    if (fh) {
      try {
        await fh.close();
      } catch (err) {
        throw toPyError(err);
      }
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
  private async loop(fh: FileHandle | null, reader: RemoteReader): Promise<void> {
    const { state } = this;
    let remaining = this.maxsize;
    let writing: Promise<void> | null = null;
    try {
      for (;;) {
        if (state.interrupted || fh === null) break;
        let length = this.blocksize;
        if (remaining !== null && length > remaining) length = remaining;
        if (length <= 0) {
          state.maxSizeReached(this.path);
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
        writing = writeAll(fh, data);
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

/** The whole of `data` at the file's position (the file was opened for writing, so that is its end). */
async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    try {
      off += (await fh.write(data, off, data.length - off)).bytesWritten;
    } catch (err) {
      throw toPyError(err); // Python's write errors name no file
    }
  }
}
