// What `bbagent status` is told: the agent (pid, version, uptime, memory, event loop) and each of its workers
// (connection, running commands, output figures), assembled from read-only snapshots at the time of asking.

import type { WorkerStatus } from '../hosted-worker.js';

/** The version of the control protocol's reply: raised when a field changes meaning or goes away. */
export const STATUS_FORMAT = 1;

export interface AgentStatus {
  format: typeof STATUS_FORMAT;
  pid: number;
  version: string;
  /** Epoch ms when the agent started, and now (the clock that `elapsedS` and `connectedSince` are read against). */
  startedAt: number;
  now: number;
  /** Resident set size, bytes. */
  rssBytes: number;
  /** The event loop: how late its last check ran, the longest stall and the stalls (>= 100 ms) so far. */
  eventLoop: { lagMs: number; maxStallMs: number; stalls: number };
  /** The metrics endpoint's URL, or null when metrics are off. */
  metricsUrl: string | null;
  /** A stop is under way (a drain request or a stop signal): the agent exits once no command runs. */
  draining: boolean;
  workers: WorkerStatus[];
}

/** Where the pieces of a status come from (the composition root hands them over). */
export interface StatusSources {
  version: string;
  startedAt: number;
  workers: () => readonly { status(): WorkerStatus }[];
  loop: { readonly lastLagMs: number; readonly maxStallMs: number; readonly stalls: number };
  metricsUrl: () => string | null;
  draining: () => boolean;
}

export function collectStatus(s: StatusSources): AgentStatus {
  const round = (ms: number): number => Math.round(ms * 10) / 10;
  return {
    format: STATUS_FORMAT,
    pid: process.pid,
    version: s.version,
    startedAt: s.startedAt,
    now: Date.now(),
    rssBytes: process.memoryUsage.rss(),
    eventLoop: { lagMs: round(s.loop.lastLagMs), maxStallMs: round(s.loop.maxStallMs), stalls: s.loop.stalls },
    metricsUrl: s.metricsUrl(),
    draining: s.draining(),
    workers: s.workers().map((w) => w.status()),
  };
}
