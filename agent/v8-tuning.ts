// V8 settings for a worker agent, applied before the rest of the agent is compiled (main.ts imports this first).
//
// V8 hands a function to its optimizing compiler (TurboFan) once the function has run a fixed amount of bytecode
// (the interrupt budget). An agent runs many short bursts of fresh code, each a few thousand iterations: a step's
// command, a directory's 2,000 files. Measured on a 2,000-file directory upload (instructions counted under
// callgrind, the worker's process only): 59% of the agent's work during the build was TurboFan compiling the tar
// walk and Node's fs wrappers, which then ran for a few milliseconds each. Four times the budget leaves that
// burst in V8's baseline tiers: the worker's CPU for the build went from 130-170 ms to 60-90 ms (buildbot-worker:
// 170-230 ms), and long loops (50 MiB of output) still reach TurboFan within their first milliseconds.

//
// The flag's name depends on V8's version, and V8 prints "unrecognized flag" for a name it lacks: V8 11 (Node 20,
// the tests' Node) counts bytecode (`--interrupt-budget`, default 66 KiB); V8 12 (Node 22, the single executables)
// counts invocations before TurboFan (`--invocation-count-for-turbofan`, default 3000; Maglev, a middle tier V8 11
// lacks, keeps its own count). Four times the default on both.

//
// V8's memory reducer: after a full collection that shrank the heap (IdleCompactor's, in agent/memory.ts), V8
// schedules two more memory-reducing full collections 8 s later. In an agent they found nothing left (7.9 -> 7.9
// MB, --trace-gc) and cost ~15-20 ms of CPU with their concurrent marking, 8 s into a fresh worker's first build.
// IdleCompactor gives the heap back when the agent is idle, so V8's reducer runs no collection: on V8 12
// `--memory-reducer-gc-count=0` (its timer still fires, once, and finds it has nothing to do); V8 11 has no such
// count, and one collection instead of two there. Both read the flags when they decide, so setting them at run
// time works (`--no-memory-reducer` does not: the reducer exists once the heap does). Small heaps grown at
// start-up also start it (--no-memory-reducer-for-small-heaps).

//
// How far V8 lets the old generation grow before its next full collection: by default a factor between 1.1 and 4
// it derives from how fast it collects, at least 8 MB more than what the last collection kept. A fast step's
// batches and encoded messages live just long enough (tens of milliseconds, two scavenges) to be promoted, so the
// old generation fills with them at the output's rate: a 50 MiB step of 40-byte lines ran full collections at a
// 25-37 MB heap (from 8-9 MB live, --trace-gc). A fixed factor of 1.3 leaves the 8 MB step in charge at an agent's
// heap sizes: collections at ~20 MB. Peak RSS of that step 90-92 -> 76-77 MiB; worker CPU and the other builds
// the same within noise (PB, single executable, 2 runs each; scripts/bench/run --only stdout-50MiB-40B,download,
// trickle --protocol pb). `--optimize-for-size` also lowers the step (71-73 MiB) but doubled a 50 MiB download's
// CPU (0.13 -> 0.23-0.26 s). The factor is read at each collection, so setting it at run time works.

import v8 from 'node:v8';

/** The flag that delays TurboFan four-fold on this V8, or undefined where none is known. */
export function turbofanDelayFlag(v8Version: string): string | undefined {
  const major = Number.parseInt(v8Version, 10);
  if (major === 11) return `--interrupt-budget=${4 * 66 * 1024}`;
  if (major === 12) return `--invocation-count-for-turbofan=${4 * 3000}`;
  return undefined;
}

/** The flags that leave an agent's heap to IdleCompactor rather than V8's memory reducer, on this V8. */
export function memoryReducerFlags(v8Version: string): string[] {
  const major = Number.parseInt(v8Version, 10);
  if (major === 12) return ['--memory-reducer-gc-count=0', '--no-memory-reducer-for-small-heaps'];
  if (major === 11) return ['--memory-reducer-single-gc', '--no-memory-reducer-for-small-heaps'];
  return [];
}

/** The flag that fixes V8's heap growing factor (1.3) on this V8, or undefined where none is known. */
export function heapGrowthFlag(v8Version: string): string | undefined {
  const major = Number.parseInt(v8Version, 10);
  return major === 11 || major === 12 ? '--heap-growing-percent=30' : undefined;
}

const flag = turbofanDelayFlag(process.versions.v8);
if (flag !== undefined) v8.setFlagsFromString(flag);
for (const f of memoryReducerFlags(process.versions.v8)) v8.setFlagsFromString(f);
const growth = heapGrowthFlag(process.versions.v8);
if (growth !== undefined) v8.setFlagsFromString(growth);
