// Chooses the Platform implementation once, at start-up. The service managers load when one is asked for
// (`bbagent service`, `stop`): `start` does not evaluate their code.

import { posixPlatform } from './posix/platform.js';
import { win32Platform } from './win32/platform.js';
import type { Platform } from './types.js';
import type { ServiceManager } from './service/types.js';
import type { ServiceHost } from './service/common.js';

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
export async function currentServiceManager(host?: ServiceHost): Promise<ServiceManager> {
  const h = host ?? (await import('./service/host.js')).realServiceHost();
  switch (process.platform) {
    case 'win32':
      return (await import('./win32/service.js')).winswServiceManager({ host: h });
    case 'darwin':
      return (await import('./darwin/service.js')).launchdServiceManager({ host: h });
    default:
      return (await import('./linux/service.js')).systemdServiceManager({ host: h });
  }
}
