// The Platform interface: everything OS-specific the agent core needs, chosen once at start-up, in two halves
// that consumers name separately: process control (process-control.ts) and host facts (host-facts.ts).
// Nothing outside platforms/ looks at process.platform.

import type { HostFacts } from './host-facts.js';
import type { ProcessControl } from './process-control.js';

export type { HostFacts, OwnerNames } from './host-facts.js';
export type {
  ExitStatus,
  InspectLimits,
  PidStamp,
  ProcessControl,
  ProcessFacts,
  ProcessHandle,
  ProcessQuery,
  ProcessRef,
  SpawnRequest,
  StackReport,
  TrackingMarker,
} from './process-control.js';
export { SpawnError } from './process-control.js';

/** The whole platform: what the composition root chooses and hands on, each consumer taking the half it needs. */
export interface Platform extends ProcessControl, HostFacts {}
