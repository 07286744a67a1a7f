// What RunProcess is asked to run and how: buildbot-worker's RunProcess arguments, plus the agent's own
// (process registry, tracking, forensics, leftover check).

import type { ForensicsWhen } from './hang-forensics.js';
import type { ProcessRegistry } from './tracking.js';

export type LogfileSpec = string | { filename: string; follow?: boolean };

export interface RunProcessOptions {
  /** A string runs through the shell; a list is an argv. */
  command: string | string[];
  /** What the header shows instead of `command` (obfuscated arguments replaced). */
  fakeCommand?: string | string[];
  workdir: string;
  environ: Record<string, string>;
  sendStdout: boolean;
  sendStderr: boolean;
  sendRC: boolean;
  /** Seconds (>= 0, Infinity: never), as argOptSeconds (commands/args.ts) checked them; null: none. */
  timeout: number | null;
  maxTime: number | null;
  sigtermTime: number | null;
  initialStdin: string | null;
  logEnviron: boolean;
  logfiles: Record<string, LogfileSpec>;
  usePTY: boolean;
  interruptSignal: string;
  /** When to collect hang forensics before a kill (default: before a timeout or maxTime kill). */
  forensics?: ForensicsWhen;
  /** The agent's registry of running processes (it kills them all before it exits); absent: not registered. */
  registry?: ProcessRegistry;
  /** The tracking variable's value in the agent's own environment, kept in front of the command's marker. */
  inheritedTrackingId?: string;
  /**
   * Whether a normal end looks for processes the command left running (default true). The rm/cp helpers of
   * rmdir and cpdir start no daemons, and a scan of every process on the host after each would be wasted.
   */
  leftoverCheck?: boolean;
}
