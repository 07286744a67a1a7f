// The suite result as the master gets it: every test (a pass carries no message), failure messages clipped so
// that 100k results with long messages still make a document of a few megabytes (sent in pieces, json-status.ts).

import type { SuiteRunResult } from '../suites/run-types.js';

/** A message longer than this is clipped for the master (the step's log shows it; the full one is in the report). */
export const MASTER_MESSAGE_CHARS = 2000;
/** All messages together at most this many characters: past it, messages are left out (counted in `messages_dropped`). */
export const MASTER_MESSAGES_TOTAL = 2 * 1024 * 1024;

export function forMaster(result: SuiteRunResult): SuiteRunResult & { messages_dropped: number } {
  let budget = MASTER_MESSAGES_TOTAL;
  let dropped = 0;
  const tests = result.tests.map((t) => {
    let message = t.status === 'pass' ? '' : t.message;
    if (message.length > MASTER_MESSAGE_CHARS) message = `${message.slice(0, MASTER_MESSAGE_CHARS)}… (clipped)`;
    if (message.length > budget) {
      dropped++;
      message = '';
    }
    budget -= message.length;
    const out: SuiteRunResult['tests'][number] = { id: t.id, name: t.name, group: t.group, status: t.status, duration_s: t.duration_s, message };
    if (t.known_intermittent === true) out.known_intermittent = true;
    return out;
  });
  return { ...result, tests, messages_dropped: dropped };
}
