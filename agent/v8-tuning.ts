// V8 settings for a worker agent, applied before the rest of the agent is compiled (main.ts imports this first).
//
// V8 hands a function to its optimizing compiler (TurboFan) once the function has run a fixed amount of bytecode
// (the interrupt budget). An agent runs many short bursts of fresh code, each a few thousand iterations: a step's
// command, a directory's 2,000 files. Measured on a 2,000-file directory upload (instructions counted under
// callgrind, the worker's process only): 59% of the agent's work during the build was TurboFan compiling the tar
// walk and Node's fs wrappers, which then ran for a few milliseconds each. Four times the budget leaves that
// burst in V8's baseline tiers: the worker's CPU for the build went from 130-170 ms to 60-90 ms (buildbot-worker:
// 170-230 ms), and long loops (50 MiB of output) still reach TurboFan within their first milliseconds.

import v8 from 'node:v8';

/** V8's default is 66 KiB of bytecode (V8 11, Node 20). */
const INTERRUPT_BUDGET = 4 * 66 * 1024;

v8.setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
