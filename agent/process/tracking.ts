// Process tracking: every command's processes carry a marker in their environment (as the GitHub Actions
// runner's RUNNER_TRACKING_ID), so a daemon that double-forked out of the process tree is still found and
// killed; and the agent keeps a registry of running processes so that its own exit kills them all first, and
// paces the checks for what commands left running.

import { randomBytes } from 'node:crypto';
import type { TrackingMarker } from '../../platforms/types.js';
import { settleWithin } from '../timers.js';

/**
 * The variable that carries the marker. It is set after the step's `env` is merged, so a step cannot remove
 * it; an outer value (the agent itself runs inside another agent's build) is kept in front, ':'-separated.
 * Not BBAGENT_*: those are the agent's own and never reach a build.
 */
export const TRACKING_ENV = 'BUILDBOT_TRACKING_ID';

/** A fresh marker for one command, unique on this host. */
export function newTrackingMarker(): TrackingMarker {
  return { name: TRACKING_ENV, value: `bbagent-${process.pid}-${randomBytes(8).toString('hex')}` };
}

/** `env` with the marker set last and outermost (the variable's inherited value kept in front of ours). */
export function withTrackingMarker(env: Record<string, string>, marker: TrackingMarker, inherited: string | undefined): Record<string, string> {
  const out = { ...env };
  out[marker.name] = inherited ? `${inherited}:${marker.value}` : marker.value;
  return out;
}

/** Something the agent must end before it exits: a running command's processes. */
export interface TrackedProcess {
  /** Kills every process it started, at once (SIGKILL); resolves when the kill is done. */
  terminate(): Promise<void>;
}

/** How long the agent's exit waits for the last kills (ms): a /proc scan on a very busy host takes a while. */
export const TERMINATE_ALL_TIMEOUT_MS = 10_000;

/**
 * The share of the agent's time that checks for leftovers may take at most. A check is a scan of every process
 * on the host (~12 us each: 25 ms of CPU on a host with 2,000 processes) after every command that ended by itself; it
 * only feeds a log line, so a burst of short commands must not turn it into a steady load.
 */
export const LEFTOVER_CHECK_DUTY = 0.1;
/** Checks waiting for their turn at most; a command ending while this many wait is not checked (the log says so). */
export const LEFTOVER_CHECK_QUEUE_MAX = 20;

/**
 * Runs the checks for leftovers one at a time, each followed by a pause of its own duration x (1/duty - 1), so
 * that together they take at most `duty` of the time, whatever the rate at which commands end.
 */
export class LeftoverChecks {
  private readonly queue: Array<() => Promise<void>> = [];
  private running = false;
  private readonly duty: number;
  private readonly queueMax: number;
  private readonly now: () => number;
  private readonly pause: (ms: number) => Promise<void>;

  constructor(opts: { duty?: number; queueMax?: number; now?: () => number; pause?: (ms: number) => Promise<void> } = {}) {
    this.duty = opts.duty ?? LEFTOVER_CHECK_DUTY;
    this.queueMax = opts.queueMax ?? LEFTOVER_CHECK_QUEUE_MAX;
    this.now = opts.now ?? (() => performance.now());
    // unref: a pending check never keeps the agent from exiting
    this.pause = opts.pause ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()));
  }

  /** Queues `check`; false (and it never runs) when too many already wait. */
  submit(check: () => Promise<void>): boolean {
    if (this.queue.length >= this.queueMax) return false;
    this.queue.push(check);
    if (!this.running) void this.drain();
    return true;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let check = this.queue.shift(); check; check = this.queue.shift()) {
        const t0 = this.now();
        await check().catch(() => undefined);
        await this.pause((this.now() - t0) * (1 / this.duty - 1));
      }
    } finally {
      this.running = false;
    }
  }
}

/** The running processes of all commands, so the agent's exit can kill them before the agent is gone. */
export class ProcessRegistry {
  private readonly live = new Set<TrackedProcess>();
  /** The agent-wide pacing of checks for what commands left running. */
  readonly leftovers: LeftoverChecks;

  constructor(opts: { leftovers?: LeftoverChecks } = {}) {
    this.leftovers = opts.leftovers ?? new LeftoverChecks();
  }

  add(p: TrackedProcess): void {
    this.live.add(p);
  }

  delete(p: TrackedProcess): void {
    this.live.delete(p);
  }

  get size(): number {
    return this.live.size;
  }

  /** Kills every tracked process tree at once; resolves when all are done, or after `timeoutMs` whatever happens. */
  async terminateAll(timeoutMs = TERMINATE_ALL_TIMEOUT_MS): Promise<void> {
    const all = [...this.live].map((p) => p.terminate().catch(() => undefined));
    if (all.length) await settleWithin(Promise.all(all), timeoutMs);
  }
}
