// rmfile: os.remove(path) of one file, as buildbot-worker's RemoveFile (errors: header + errno as rc).

import { unlinkSync } from 'node:fs';
import { argPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { reportOSError } from '../fs/os-error-report.js';
import { checkNul } from '../py/os.js';
import { fsPath } from '../py/fsencoding.js';
import { relPath } from './relative-args.js';

class RemoveFile implements WorkerCommand {
  constructor(
    private readonly path: string,
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    checkNul(this.path);
    try {
      unlinkSync(fsPath(this.path));
    } catch (err) {
      reportOSError(this.io, 'rmfile', this.path, err);
      return;
    }
    this.io.status('rc', 0);
  }

  interrupt(): void {
    // nothing to stop
  }
}

export const rmfileCommand: CommandDefinition = {
  names: ['rmfile'],
  requiredArgs: ['path'],
  relativeArgs: relPath('path', 'path'),
  create(args, io, env) {
    return new RemoveFile(argPath(args, 'path', env), io);
  },
};
