// Process tracking: every command's processes carry a marker in their environment (as the GitHub Actions
// runner's RUNNER_TRACKING_ID), so a daemon that double-forked out of the process tree is still found and
// killed; and the agent keeps a registry of running processes so that its own exit kills them all first.

import { randomBytes } from 'node:crypto';
import type { TrackingMarker } from '../../platforms/types.js';

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

/** The running processes of all commands, so the agent's exit can kill them before the agent is gone. */
export class ProcessRegistry {
  private readonly live = new Set<TrackedProcess>();

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
  terminateAll(timeoutMs = TERMINATE_ALL_TIMEOUT_MS): Promise<void> {
    const all = [...this.live].map((p) => p.terminate().catch(() => undefined));
    if (all.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      void Promise.all(all).then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
