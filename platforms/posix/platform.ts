// The POSIX platform (Linux and macOS): process control and host facts of the same OS.

import type { Platform } from '../types.js';
import { posixHostFacts } from './host-facts.js';
import { posixProcessControl, type PosixProcessDeps } from './process-control.js';

export type { PosixProcessDeps } from './process-control.js';

export function posixPlatform(id: 'linux' | 'darwin', deps: PosixProcessDeps = {}): Platform {
  return { ...posixProcessControl(id, deps), ...posixHostFacts(id) };
}
