// Chooses the Platform implementation once, at start-up.

import { posixPlatform } from './posix/platform.js';
import { win32Platform } from './win32/platform.js';
import type { Platform } from './types.js';

export type { Platform, SpawnRequest, ProcessHandle, ExitStatus } from './types.js';
export { SpawnError } from './types.js';

export function currentPlatform(): Platform {
  switch (process.platform) {
    case 'win32':
      return win32Platform();
    case 'darwin':
      return posixPlatform('darwin');
    default:
      return posixPlatform('linux');
  }
}
