// upload_directory / uploadDirectory: sends a worker directory to the master's DirectoryWriter as a tar
// stream (plain, gz or bz2) and asks it to unpack, as buildbot-worker's WorkerDirectoryUploadCommand does.
// Unlike buildbot-worker the archive is streamed while it is made, never written to a temp file, and it goes in
// fewer, larger writes than the master's blocksize: the master's DirectoryWriter appends whatever each write
// brings (and cuts at maxsize itself), so only the number of calls changes, not the bytes.

import { setImmediate as nextTurn } from 'node:timers/promises';
import { argInt, argOptString, argPresent, argPath } from './args.js';
import type { CommandDefinition, CommandEnv, CommandIO, RemoteWriter, WorkerCommand } from './types.js';
import { MAX_BLOCK_BYTES, TransferState, maxsizeArg, sendBlocks } from './upload-file.js';
import { BlockPool, IteratorBlockReader } from '../fs/block-reader.js';
import { openTarStream } from '../transfer/tar.js';
import { transferPath } from './relative-args.js';

/**
 * Archive bytes per write when the master's blocksize is smaller (DirectoryUpload's default is 16 KiB). Each
 * write costs the master a Banana message, a Jelly tree and a Deferred, and it copies what Banana has buffered
 * once per token; measured on 2,000 small files (6.4 MiB of archive), 16 KiB writes cost its reactor ~40 ms
 * before the unpack. Under PB's 640 KiB string limit, and bounded by the writer's own limit.
 */
export const DIRECTORY_WRITE_BYTES = 512 * 1024;

/**
 * The size of the writes: at least the master's blocksize, at most what one write call carries. A blocksize of 0
 * or less stays as it is: buildbot-worker then sends nothing and reports the maximum size reached.
 */
export function directoryWriteBytes(blocksize: number, writer: RemoteWriter): number {
  if (blocksize <= 0) return blocksize;
  return Math.min(Math.max(blocksize, DIRECTORY_WRITE_BYTES), writer.maxWriteBytes ?? MAX_BLOCK_BYTES, MAX_BLOCK_BYTES);
}

class UploadDirectory implements WorkerCommand {
  private readonly state = new TransferState();

  constructor(
    private readonly path: string,
    private readonly blocksize: number,
    private readonly maxsize: number | null,
    private readonly compress: string | null,
    private readonly io: CommandIO,
    private readonly env: CommandEnv,
  ) {}

  async run(): Promise<void> {
    const { state, io, path } = this;
    const writer: RemoteWriter = io.writer('directory');
    const writeBytes = directoryWriteBytes(this.blocksize, writer);
    // errors at the root (no such directory, bzip2 missing) fail the command before anything is sent, like
    // buildbot-worker's tarfile.add raising in start(): no header, no rc. The plain archive comes in chunks of
    // exactly one write each, which go out as they are.
    // the plain archive's chunks are sent as they are: once answered, the next ones are made in them
    const pool = this.compress === 'gz' || this.compress === 'bz2' ? undefined : new BlockPool();
    const tar = await openTarStream(path, this.compress, {
      ...(pool ? { pool } : {}),
      environ: this.env.environ,
      host: this.env.platform,
      ...(writeBytes > 0 ? { chunkBytes: writeBytes } : {}),
    });
    const source = new IteratorBlockReader(tar);

    io.text('header', `sending ${path}\n`);

    let archiveError: { error: unknown } | null = null;
    let failure: { error: unknown } | null = null;
    try {
      await sendBlocks(
        state,
        path,
        {
          read: async (n) => {
            try {
              // the archive is made synchronously: a turn of the event loop first lets the writes made so far
              // leave (the PB connection sends a turn's writes together) and the master's answers come in
              await nextTurn();
              return await source.read(n);
            } catch (error) {
              archiveError = { error };
              throw error;
            }
          },
          release: (block) => pool?.release(block),
        },
        writeBytes,
        this.maxsize,
        (d) => writer.write(d),
      );
    } catch (error) {
      failure = { error };
    } finally {
      // stops the walk / compressor when the loop ended early (interrupt, maxsize, write error)
      await source.close().catch(() => undefined);
    }
    if (archiveError) {
      // buildbot-worker builds the whole archive before sending: an unreadable entry fails the command with
      // no rc and no unpack. Here some blocks may already be at the master; still no unpack, no rc.
      throw (archiveError as { error: unknown }).error;
    }
    if (failure === null) {
      // also after an interrupt or a truncation: the master then unpacks what it got
      try {
        await writer.unpack();
      } catch (error) {
        state.rc = 1;
        failure = { error };
      }
    }
    // a failed write leaves rc as it was (buildbot-worker does not set it for directories)
    state.report(io);
    if (failure) throw failure.error;
  }

  interrupt(): void {
    this.state.interrupt();
  }
}

export const uploadDirectoryCommand: CommandDefinition = {
  names: ['upload_directory', 'uploadDirectory'],
  // buildbot-worker also requires 'writer', which travels in CommandIO here (see upload_file)
  requiredArgs: ['path', 'blocksize'],
  relativeArgs: transferPath('workersrc'),
  create(args, io, env) {
    argPresent(args, 'compress');
    return new UploadDirectory(argPath(args, 'path', env), argInt(args, 'blocksize'), maxsizeArg(args), argOptString(args, 'compress') ?? null, io, env);
  },
};
