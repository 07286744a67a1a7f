// upload_directory / uploadDirectory: sends a worker directory to the master's DirectoryWriter as a tar
// stream (plain, gz or bz2) and asks it to unpack, as buildbot-worker's WorkerDirectoryUploadCommand does.
// Unlike buildbot-worker the archive is streamed while it is made, never written to a temp file.

import { argInt, argOptString, argPresent, argPath } from './args.js';
import type { CommandDefinition, CommandEnv, CommandIO, RemoteWriter, WorkerCommand } from './types.js';
import { TransferState, maxsizeArg, sendBlocks } from './upload-file.js';
import { IteratorBlockReader } from '../fs/block-reader.js';
import { openTarStream } from '../transfer/tar.js';
import { transferPath } from './relative-args.js';

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
    // errors at the root (no such directory, bzip2 missing) fail the command before anything is sent, like
    // buildbot-worker's tarfile.add raising in start(): no header, no rc
    const tar = await openTarStream(path, this.compress, { environ: this.env.environ, host: this.env.platform });
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
              return await source.read(n);
            } catch (error) {
              archiveError = { error };
              throw error;
            }
          },
        },
        this.blocksize,
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
