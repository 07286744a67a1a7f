// Cooperative time slicing for file work that may run long (a big tree, a long list of paths): the work checks
// in often and gives the event loop a turn once its slice is used up, so other builders' output keeps flowing.

import { setImmediate as nextTurn } from 'node:timers/promises';

/** Longest run of file work between two turns of the event loop: well under the 100 ms stall budget. */
export const WORK_SLICE_MS = 20;

export class TimeSlicer {
  private deadline: number;

  constructor(
    private readonly sliceMs = WORK_SLICE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = this.now() + sliceMs;
  }

  /** True when the current slice is used up: the caller should `await pause()` before going on. */
  due(): boolean {
    return this.now() >= this.deadline;
  }

  /** Lets the event loop run (timers, sockets, other commands), then starts a new slice. */
  async pause(): Promise<void> {
    await nextTurn();
    this.deadline = this.now() + this.sliceMs;
  }
}
