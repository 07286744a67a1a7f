// Hang forensics: the report's table, its bounds, and when a step asks for it. Collection with a fake platform
// proves the time bound and the early end on abort; real processes are in process-tracking-shell.test.ts.
import { describe, expect, it } from 'vitest';
import {
  capText,
  collectHangReport,
  FORENSICS_MAX_BYTES,
  forensicsWhen,
  formatProcessTable,
  prefixLines,
  wantsForensics,
} from '../../agent/process/hang-forensics.js';
import { currentPlatform, type Platform, type ProcessFacts } from '../../platforms/index.js';

const f = (pid: number, ppid: number, command: string, extra: Partial<ProcessFacts> = {}): ProcessFacts => ({
  pid,
  ppid,
  state: 'S',
  cpuSeconds: 0.5,
  wchan: 'do_wait',
  openFiles: 4,
  command,
  ...extra,
});

describe('the process table', () => {
  it('lists parents before children, children indented, unknown fields as -', () => {
    const table = formatProcessTable([
      f(30, 20, 'sleep 300', { wchan: undefined, openFiles: undefined }),
      f(20, 10, "sh -c 'sleep 300; echo'"),
      f(10, 1, 'make'),
    ]);
    expect(table.split('\n')).toEqual([
      '     PID     PPID S   CPU(s)   FDS WCHAN                COMMAND',
      '      10        1 S     0.50     4 do_wait              make',
      "      20       10 S     0.50     4 do_wait                sh -c 'sleep 300; echo'",
      '      30       20 S     0.50     - -                        sleep 300',
      '',
    ]);
  });

  it('long command lines are cut; text is capped on a line boundary and says so', () => {
    expect(formatProcessTable([f(1, 0, 'x'.repeat(1000))])).toContain(`${'x'.repeat(400)}...\n`);
    const capped = capText('line\n'.repeat(1000), 1000);
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(1000 + 40);
    expect(capped).toMatch(/line\n\[\.\.\. cut at 1000 bytes\]\n$/);
    expect(capText('short\n', 1000)).toBe('short\n');
    expect(prefixLines('a\nb\n')).toBe('hang: a\nhang: b\n');
  });
});

describe('when', () => {
  it('timeout by default; always adds interrupts; off never; bad values are refused', () => {
    expect(forensicsWhen(undefined)).toBe('timeout');
    expect(forensicsWhen({ OTHER: '1' })).toBe('timeout');
    expect(forensicsWhen({ BBAGENT_HANG_FORENSICS: 'always' })).toBe('always');
    expect(forensicsWhen({ BBAGENT_HANG_FORENSICS: 'Off' })).toBe('off');
    expect(() => forensicsWhen({ BBAGENT_HANG_FORENSICS: 'later' })).toThrow(/BBAGENT_HANG_FORENSICS: expected timeout, always or off, got "later"/);
    expect(wantsForensics('timeout', 'maxTime')).toBe(true);
    expect(wantsForensics('timeout', 'interrupt')).toBe(false);
    expect(wantsForensics('always', 'interrupt')).toBe(true);
    expect(wantsForensics('off', 'timeout')).toBe(false);
  });
});

describe('collection', () => {
  /** A platform whose stack tool never answers (a wedged debugger) and prints without end. */
  const hanging = (): Platform => ({
    ...currentPlatform(),
    findProcesses: async () => [
      { pid: 1, start: undefined },
      { pid: 2, start: undefined },
    ],
    inspectProcesses: async (pids) => pids.map((pid) => f(pid, pid - 1, `proc ${pid}`)),
    collectStacks: () => new Promise(() => {}),
  });

  it('a stack tool that never answers does not hold the kill past the time bound', async () => {
    const t0 = performance.now();
    const r = await collectHangReport(hanging(), {}, 'before the timeout kill', { timeoutMs: 600 });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(600 + 1500);
    expect(r.processes).toBe(2);
    expect(r.table).toContain('proc 2');
    expect(r.tool).toBeUndefined();
  });

  it('an abort (an interrupt that cannot wait) ends it at once with what it has', async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 100);
    const r = await collectHangReport(hanging(), {}, 'when interrupted', { signal: ac.signal });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(r.processes).toBe(2);
  });

  it('the total is a hard bound: platform calls that each overrun their own limit do not add up past it', async () => {
    const after = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms).unref());
    const total = 1000;
    const cases: Array<[string, Partial<Platform>]> = [
      // the scan answers in time, then the facts never come (before: 0.45 + 1.2 s)
      ['facts', { findProcesses: () => after(450, [{ pid: 1, start: undefined }]), inspectProcesses: () => after(10_000, []) }],
      // scan and facts at once, then the stack tool overruns its budget (before: the budget + 0.5 s)
      ['stacks', { findProcesses: async () => [{ pid: 1, start: undefined }], inspectProcesses: async () => [f(1, 0, 'p')] }],
    ];
    for (const [name, calls] of cases) {
      const t0 = performance.now();
      await collectHangReport({ ...hanging(), ...calls }, {}, 'x', { timeoutMs: total });
      expect(performance.now() - t0, name).toBeLessThan(total + 300);
    }
  });

  it('what the platform could not examine is in the report', async () => {
    const p: Platform = {
      ...hanging(),
      findProcesses: async (q) => {
        q.onIncomplete?.('environment not read for 1 process(es): pid 7: in state D');
        return [{ pid: 1, start: undefined }];
      },
      inspectProcesses: async (pids, limits) => {
        limits.onIncomplete?.('command line not read for 1 process(es): pid 1: in state D');
        return pids.map((pid) => f(pid, 0, `[proc ${pid}]`));
      },
    };
    const r = await collectHangReport(p, {}, 'x', { timeoutMs: 600 });
    expect(r.notes).toEqual(['environment not read for 1 process(es): pid 7: in state D', 'command line not read for 1 process(es): pid 1: in state D']);
  });

  it('huge stacks are capped to the report size', async () => {
    const p: Platform = { ...hanging(), collectStacks: async () => ({ tool: 'fake', text: 'frame\n'.repeat(200_000) }) };
    const r = await collectHangReport(p, {}, 'x');
    expect(Buffer.byteLength(r.table) + Buffer.byteLength(r.stacks)).toBeLessThanOrEqual(FORENSICS_MAX_BYTES + 64);
    expect(r.stacks).toMatch(/cut at \d+ bytes\]\n$/);
  });
});
