// Chooses the Platform implementation once, at start-up.

import { posixPlatform } from './posix/platform.js';
import { win32Platform } from './win32/platform.js';
import type { Platform } from './types.js';
import type { ServiceManager } from './service/types.js';
import { launchdServiceManager } from './darwin/service.js';
import { systemdServiceManager } from './linux/service.js';
import { realServiceHost } from './service/host.js';
import type { ServiceHost } from './service/common.js';
import { winswServiceManager } from './win32/service.js';

export type {
  Platform,
  ProcessControl,
  HostFacts,
  OwnerNames,
  SpawnRequest,
  ProcessHandle,
  ExitStatus,
  TrackingMarker,
  ProcessRef,
  ProcessQuery,
  ProcessFacts,
  InspectLimits,
  StackReport,
} from './types.js';
export type { ServiceManager, ServiceSpec, ServiceRef, ServiceStatus, ServiceFile, InstallOutcome } from './service/types.js';
export type { ServiceHost, CommandRunner, CommandResult } from './service/common.js';
export { SpawnError } from './types.js';
export { ServiceError } from './service/types.js';
export { DEFAULT_STOP_TIMEOUT_S, MAX_STOP_TIMEOUT_S } from './service/common.js';

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

/** The OS's service manager (systemd, launchd or a WinSW-run Windows service); `host` replaces the real machine in tests. */
export function currentServiceManager(host: ServiceHost = realServiceHost()): ServiceManager {
  switch (process.platform) {
    case 'win32':
      return winswServiceManager({ host });
    case 'darwin':
      return launchdServiceManager({ host });
    default:
      return systemdServiceManager({ host });
  }
}
