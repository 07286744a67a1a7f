// listdir: os.listdir(path) (names in directory order, without '.' and '..'), as buildbot-worker's ListDir;
// read in the thread pool, so a huge directory does not hold the event loop.

import { argPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { reportOSError } from '../fs/os-error-report.js';
import { listdir } from '../py/os.js';
import { relPath } from './relative-args.js';

class ListDir implements WorkerCommand {
  constructor(
    private readonly path: string,
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    let files: string[];
    try {
      files = await listdir(this.path);
    } catch (err) {
      reportOSError(this.io, 'listdir', this.path, err);
      return;
    }
    this.io.status('files', files);
    this.io.status('rc', 0);
  }

  interrupt(): void {
    // nothing to stop
  }
}

export const listdirCommand: CommandDefinition = {
  names: ['listdir'],
  // buildbot-worker misspells requiredArgs on this command, so nothing is checked up front
  requiredArgs: [],
  relativeArgs: relPath('dir', 'path'),
  create(args, io, env) {
    return new ListDir(argPath(args, 'path', env), io);
  },
};
