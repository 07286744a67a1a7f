// glob: Python's glob.glob(path, recursive=True) on the worker, as buildbot-worker's GlobPath
// (unsorted results, dotfiles only for dotted pattern parts, '**' across directories). The walk runs in slices
// (other builders go on meanwhile), stops on interrupt, and fails past its budgets (symbolic link loops).

import { argPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { pyGlob } from '../py/glob.js';
import { PyError } from '../py/exceptions.js';
import { reportOSError } from '../fs/os-error-report.js';
import { TimeSlicer } from '../fs/time-slice.js';
import { relPath } from './relative-args.js';

class GlobPath implements WorkerCommand {
  private interrupted = false;

  constructor(
    private readonly pattern: string,
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    let files: string[];
    try {
      files = await pyGlob(this.pattern, { recursive: true, stopped: () => this.interrupted, slicer: new TimeSlicer() });
    } catch (err) {
      if (err instanceof PyError && err.code === 'E_GLOB_STOPPED') {
        // like an interrupted transfer: rc 1, and no result
        this.io.text('header', `glob: interrupted: ${this.pattern}\n`);
        this.io.status('rc', 1);
        return;
      }
      reportOSError(this.io, 'glob', this.pattern, err);
      return;
    }
    this.io.status('files', files);
    this.io.status('rc', 0);
  }

  interrupt(): void {
    this.interrupted = true;
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
