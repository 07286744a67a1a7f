// Structured command results (sendJsonStatus): pieces that join to the same document, and the worker's secrets
// replaced before the document is encoded and cut, as they are in the step's output.
import { describe, expect, it } from 'vitest';
import { sendJsonStatus } from '../../agent/commands/json-status.js';
import type { CommandIO } from '../../agent/commands/types.js';
import { CommandOutput, PLAIN_OUTPUT } from '../../agent/output/command-output.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import type { StatusValue } from '../../agent/output/types.js';

function recordingIO(redactValues: string[]): { io: CommandIO; pieces: StatusValue[] } {
  const pieces: StatusValue[] = [];
  const out = new CommandOutput(
    defaultOutputSettings(),
    { ...PLAIN_OUTPUT, redact: redactValues },
    () => {},
    () => 0,
  );
  const io = {
    status: (key: string, value: StatusValue) => {
      if (key === 'doc') pieces.push(value);
    },
    redact: (text: string) => out.redact(text),
  } as unknown as CommandIO;
  return { io, pieces };
}

describe('sendJsonStatus', () => {
  it('cuts the document into pieces that join back to it, non-ASCII escaped', () => {
    const { io, pieces } = recordingIO([]);
    const doc = { tests: Array.from({ length: 500 }, (_, i) => ({ name: `t${i} 🙂 ü`, status: 'pass' })) };
    sendJsonStatus(io, 'doc', doc, 1000);
    expect(pieces.length).toBeGreaterThan(10);
    for (const p of pieces) expect(String(p)).toMatch(/^[\x00-\x7f]*$/);
    expect(JSON.parse(pieces.join(''))).toEqual(doc);
  });

  it("replaces the worker's secrets in every string, also where a piece boundary would have split one", () => {
    const secret = 'hunter2-Sw0rdfish';
    const { io, pieces } = recordingIO([secret]);
    const doc = { tests: Array.from({ length: 200 }, (_, i) => ({ name: `t${i}`, message: `login failed with ${secret} at line ${i}` })), [secret]: 1 };
    sendJsonStatus(io, 'doc', doc, 97);
    const joined = pieces.join('');
    expect(joined).not.toContain('hunter2');
    const back = JSON.parse(joined) as { tests: { message: string }[] };
    expect(back.tests[7]!.message).toBe('login failed with <redacted> at line 7');
  });
});
