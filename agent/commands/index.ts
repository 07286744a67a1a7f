// The explicit command table: every command the agent runs, advertised to the master with its version.

import { cpdirCommand } from './cpdir.js';
import { downloadFileCommand } from './download-file.js';
import { fetchCommand } from './fetch.js';
import { globCommand } from './glob.js';
import { listdirCommand } from './listdir.js';
import { mkdirCommand } from './mkdir.js';
import { perfCommand } from './perf.js';
import { rmdirCommand } from './rmdir.js';
import { rmfileCommand } from './rmfile.js';
import { shellCommand } from './shell.js';
import { statCommand } from './stat.js';
import { suiteCommand } from './suite.js';
import type { CommandDefinition } from './types.js';
import { uploadDirectoryCommand } from './upload-directory.js';
import { uploadFileCommand } from './upload-file.js';

export const COMMAND_TABLE: readonly CommandDefinition[] = [
  shellCommand,
  uploadFileCommand,
  uploadDirectoryCommand,
  downloadFileCommand,
  mkdirCommand,
  rmdirCommand,
  cpdirCommand,
  statCommand,
  globCommand,
  listdirCommand,
  rmfileCommand,
  fetchCommand,
  perfCommand,
  suiteCommand,
];
