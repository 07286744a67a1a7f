// glob: Python's glob.glob(path, recursive=True) on the worker, as buildbot-worker's GlobPath
// (unsorted results, dotfiles only for dotted pattern parts, '**' across directories).

import { argPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { pyGlob } from '../fs/pyglob.js';
import { reportOSError } from '../fs/pyerrors.js';
import { relPath } from './relative-args.js';

class GlobPath implements WorkerCommand {
  constructor(
    private readonly pattern: string,
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    let files: string[];
    try {
      files = pyGlob(this.pattern, true);
    } catch (err) {
      reportOSError(this.io, 'glob', this.pattern, err);
      return;
    }
    this.io.status('files', files);
    this.io.status('rc', 0);
  }

  interrupt(): void {
    // nothing to stop
  }
}

export const globCommand: CommandDefinition = {
  names: ['glob'],
  requiredArgs: ['path'],
  relativeArgs: relPath('path', 'path'),
  create(args, io, env) {
    return new GlobPath(argPath(args, 'path', env), io);
  },
};
