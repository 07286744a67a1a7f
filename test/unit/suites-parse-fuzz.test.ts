// Mangled reports never crash or hang a parser: seeded random truncations, byte flips, deleted and duplicated
// spans of a JUnit, a TAP and a mozlog report either parse or fail with one AgentError naming the file — never
// another exception. Every mangled report is parsed twice, in whole and in 7-character chunks, to the same end.
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { parseReportChunks, textChunks, type FormatChoice } from '../../agent/suites/parse/index.js';
import { seeded } from '../helpers/seeded.js';

const JUNIT = `<?xml version="1.0"?>
<testsuites><testsuite name="s"><testcase classname="c" name="a" time="0.1"/>
<testcase classname="c" name="b"><failure message="x &amp; y">trace<![CDATA[ <raw> ]]></failure><system-out>out</system-out></testcase>
<testcase name="f"><flakyFailure message="m"/><rerunFailure/></testcase><testcase name="s"><skipped/></testcase></testsuite></testsuites>
`;
const TAP = `TAP version 14
# Subtest: group
    ok 1 - one
      ---
      duration_ms: 1
      error: |-
        multi
        line
      ...
    not ok 2 - two # TODO later
    1..2
ok 1 - group
not ok 2 - esc \\# hash
  ---
  message: 'quoted '' text'
  ...
1..2
`;
const MOZLOG = [
  '{"action":"suite_start","time":0,"tests":{}}',
  '{"action":"test_start","test":"a/b.html","time":1}',
  '{"action":"test_status","test":"a/b.html","subtest":"s","status":"FAIL","expected":"PASS","time":2}',
  '{"action":"test_end","test":"a/b.html","status":"OK","time":3}',
  '{"action":"test_start","test":"a/c.html","time":4}',
  '{"action":"test_end","test":"a/c.html","status":"TIMEOUT","expected":"PASS","known_intermittent":["TIMEOUT"],"time":9}',
  '{"action":"suite_end","time":10}',
].join('\n');

function mangle(text: string, rand: () => number): string {
  const at = (): number => Math.floor(rand() * text.length);
  switch (Math.floor(rand() * 5)) {
    case 0:
      return text.slice(0, at());
    case 1: {
      const i = at();
      return text.slice(0, i) + String.fromCharCode(Math.floor(rand() * 0x3000)) + text.slice(i + 1);
    }
    case 2: {
      const i = at();
      return text.slice(0, i) + text.slice(i + 1 + Math.floor(rand() * 20));
    }
    case 3: {
      const i = at();
      const j = at();
      return text.slice(0, Math.max(i, j)) + text.slice(Math.min(i, j));
    }
    default:
      return text.replace(/[<>"\n{}]/g, (c) => (rand() < 0.05 ? '' : c));
  }
}

async function outcome(text: string, format: FormatChoice, chunk: number): Promise<string> {
  try {
    const r = await parseReportChunks(textChunks(text, chunk), 'fuzz.rep', { format });
    return `ok ${r.format} ${JSON.stringify(r.counts)}`;
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    expect(err.message).toMatch(/^fuzz\.rep[: ]/);
    return `error ${err.code}`;
  }
}

describe('mangled reports', () => {
  for (const [name, text] of [
    ['JUnit', JUNIT],
    ['TAP', TAP],
    ['mozlog', MOZLOG],
  ] as const) {
    it(`${name}: 400 mangled copies parse or fail with an AgentError`, async () => {
      const rand = seeded(name.length * 7919);
      const seen = new Set<string>();
      for (let i = 0; i < 400; i++) {
        const bad = mangle(text, rand);
        for (const format of ['auto', name === 'JUnit' ? 'junit' : name === 'TAP' ? 'tap' : 'mozlog'] as const) {
          const whole = await outcome(bad, format, 1 << 20);
          expect(await outcome(bad, format, 7), JSON.stringify(bad)).toBe(whole);
          seen.add(whole.split(' ')[0]!);
        }
      }
      expect([...seen].sort()).toEqual(['error', 'ok']);
    });
  }
});
