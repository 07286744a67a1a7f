// Broken and hostile reports: each is one AgentError naming the file and line (or the file and why), never a
// crash, a hang or an expanded entity: truncated XML, binary junk, DTD entities (XXE, billion laughs), deep
// nesting, huge tokens and lines, bad JSON lines, empty and missing files. Also: UTF-16 reports with a BOM read.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { parseReport, type ParseOptions } from '../../agent/suites/parse/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-parse-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

async function failure(p: string, options: ParseOptions = {}): Promise<AgentError> {
  const err = await parseReport(p, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

const JUNK = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) % 256));

describe('malformed reports', () => {
  it('a truncated JUnit file names the file and its last line', async () => {
    const p = file('cut.xml', '<testsuite name="s">\n<testcase name="a"/>\n<testcase name="b">\n<failure message="x">tra');
    const err = await failure(p);
    expect(err.code).toBe('E_SUITE_REPORT_MALFORMED');
    expect(err.message).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: not well-formed XML: `));
  });

  it('binary junk is no format; read as each format it is one error', async () => {
    const p = file('junk.bin', JUNK);
    expect((await failure(p)).code).toBe('E_SUITE_REPORT_FORMAT');
    for (const format of ['junit', 'tap', 'mozlog'] as const) {
      const err = await failure(p, { format });
      expect(err.code).toMatch(/^E_SUITE_REPORT_(MALFORMED|LIMIT)$/);
      expect(err.message.startsWith(`${p}:`)).toBe(true);
    }
    const xmlJunk = file('junk.xml', Buffer.concat([Buffer.from('<testsuite>'), JUNK]));
    expect((await failure(xmlJunk)).message).toMatch(/junk\.xml:\d+: not well-formed XML/);
  });

  it('refuses DTD entities (XXE, billion laughs) and undefined entities, expanding nothing', async () => {
    const secret = file('secret.txt', 'TOP-SECRET');
    const xxe = file('xxe.xml', `<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY x SYSTEM "file://${secret}">]>\n<testsuite><testcase name="&x;"/></testsuite>`);
    const err = await failure(xxe);
    expect(err.message).toMatch(/xxe\.xml:\d+: the DOCTYPE declares entities/);
    expect(err.message).not.toContain('TOP-SECRET');
    const lol = ['<!DOCTYPE l [<!ENTITY a "lol">'];
    for (let i = 1; i < 10; i++) lol.push(`<!ENTITY ${String.fromCharCode(97 + i)} "${`&${String.fromCharCode(96 + i)};`.repeat(10)}">`);
    const bomb = file('lol.xml', `${lol.join('')}]>\n<testsuite><testcase name="&j;"/></testsuite>`);
    expect((await failure(bomb)).code).toBe('E_SUITE_REPORT_MALFORMED');
    const undef = await failure(file('undef.xml', '<testsuite>\n<testcase name="&nbsp;"/></testsuite>'));
    expect(undef.message).toMatch(/undef\.xml:2: not well-formed XML: undefined entity \(only XML's five/);
  });

  it('deep nesting and huge tokens hit limits, not memory', async () => {
    const deep = file('deep.xml', `${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}`);
    const err = await failure(deep);
    expect(err).toMatchObject({ code: 'E_SUITE_REPORT_LIMIT' });
    expect(err.message).toMatch(/deep\.xml:1: elements nest deeper than 256 levels/);
    const huge = file('attr.xml', `<testsuite>\n<testcase name="${'x'.repeat(3_000_000)}"/></testsuite>`);
    const limit = await failure(huge, { limits: { maxTokenChars: 1_000_000 } });
    expect(limit.message).toMatch(/attr\.xml:2: one attribute value, CDATA section or message is longer than 1000000 characters/);
    const line = await failure(file('long.log', `{"action":"log","message":"${'y'.repeat(3_000_000)}"}\n`), { limits: { maxTokenChars: 1_000_000 } });
    expect(line).toMatchObject({ code: 'E_SUITE_REPORT_LIMIT' });
    expect(line.message).toMatch(/long\.log:1: a line longer than 1000000 characters/);
  });

  it('a system-out larger than the token limit is skipped, not held', async () => {
    const p = file('out.xml', `<testsuite><testcase name="t"><system-out>${'z\n'.repeat(1_500_000)}</system-out></testcase></testsuite>`);
    const results = await parseReport(p, { limits: { maxTokenChars: 1_000_000 } });
    expect(results).toMatchObject({ total: 1, passed: 1 });
  });

  it('mozlog: a bad JSON line, a record without action, a test_end without status', async () => {
    const ok = '{"action":"test_start","test":"t","time":1}';
    expect((await failure(file('a.log', `${ok}\n{"action": "test_end", "test": "t", "sta`))).message).toMatch(/a\.log:2: not a JSON line/);
    expect((await failure(file('b.log', `${ok}\n[1,2]\n`))).message).toMatch(/b\.log:2: not a mozlog record/);
    expect((await failure(file('c.log', `${ok}\n{"action":"test_end","test":"t"}\n`))).message).toMatch(/c\.log:2: test_end without a string "status"/);
  });

  it('other XML is not a JUnit report; empty and missing files are named', async () => {
    expect((await failure(file('page.xml', '<html><body/></html>'))).message).toMatch(/page\.xml:1: no <testsuites>, <testsuite> or <testcase> element/);
    expect((await failure(file('empty.xml', '  \n'))).message).toMatch(/empty\.xml: the report is empty/);
    const missing = await failure(path.join(dir, 'nope.xml'));
    expect(missing.code).toBe('E_SUITE_REPORT_READ');
    expect(missing.message).toMatch(/nope\.xml: cannot read the report \(ENOENT/);
    expect((await failure(file('x.txt', 'hello'), { format: 'tap' })).message).toMatch(/x\.txt:1: no TAP version, plan or test line/);
  });

  it('reads UTF-16 reports by their byte-order mark', async () => {
    const xml = '<testsuite name="ü"><testcase name="t☺"/></testsuite>';
    const le = file('le.xml', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(xml, 'utf16le')]));
    expect((await parseReport(le)).tests[0]).toMatchObject({ id: 'ü::t☺' });
    const be = Buffer.from(xml, 'utf16le').swap16();
    expect((await parseReport(file('be.xml', Buffer.concat([Buffer.from([0xfe, 0xff]), be])))).tests[0]).toMatchObject({ id: 'ü::t☺' });
  });
});

describe('limits of the line formats', () => {
  it('TAP: absurdly deep subtest indentation is an error, a million blank YAML lines are not held', async () => {
    const deep = await failure(file('deep.tap', `TAP version 14\n${' '.repeat(4 * 300)}ok 1 - x\n`));
    expect(deep).toMatchObject({ code: 'E_SUITE_REPORT_LIMIT' });
    expect(deep.message).toMatch(/deep\.tap:2: subtests nest deeper than 256 levels/);
    const blank = file('blank.tap', `TAP version 13\nnot ok 1 - x\n  ---\n  message: |-\n${'\n'.repeat(1_000_000)}    tail\n  ...\n1..1\n`);
    expect(await parseReport(blank)).toMatchObject({ total: 1, failed: 1 });
  });

  it('mozlog: more than 10000 tests started and never ended is an error', async () => {
    const lines = Array.from({ length: 10_001 }, (_, i) => `{"action":"test_start","test":"t${i}","time":${i}}`);
    const err = await failure(file('open.log', `${lines.join('\n')}\n`));
    expect(err).toMatchObject({ code: 'E_SUITE_REPORT_LIMIT' });
    expect(err.message).toMatch(/open\.log:10001: more than 10000 tests started and not ended/);
  });
});
