// The Windows platform: process control and host facts of Windows.

import type { Platform } from '../types.js';
import { win32HostFacts } from './host-facts.js';
import { win32ProcessControl, type Win32Deps } from './process-control.js';

export type { Win32Deps } from './process-control.js';

export function win32Platform(deps: Win32Deps = {}): Platform {
  return { ...win32ProcessControl(deps), ...win32HostFacts() };
}
