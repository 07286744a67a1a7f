// Log formats and levels: text lines as before, JSON as one object per message (a multi-line message stays one
// line), levels filtered in both; parseLogLine reads either back (start follows the daemon's log with it). The
// agent's debug lines fire through a logger made as `start` makes it with --log-level debug, and not without.

import { describe, expect, it } from 'vitest';
import { IdleGate, MasterBackoff, watchPreferred, type MasterTarget } from '../../agent/connection/failover.js';
import { createLogger, parseLogLine, type LogLevel } from '../../agent/log.js';
import { IdleCompactor } from '../../agent/memory.js';

const AT = new Date('2026-12-07T10:00:00.000Z');

function logger(level: LogLevel, format: 'text' | 'json') {
  const lines: string[] = [];
  return { lines, log: createLogger((l) => lines.push(l), { level, format, now: () => AT }) };
}

describe('log formats', () => {
  it('text: "<time> [level] message", one line per line of the message', () => {
    const { lines, log } = logger('info', 'text');
    log.info('Connected to m:1 (pb); worker is ready');
    log.warn('two\nlines');
    expect(lines).toEqual([
      '2026-12-07T10:00:00.000Z [info] Connected to m:1 (pb); worker is ready',
      '2026-12-07T10:00:00.000Z [warn] two',
      '2026-12-07T10:00:00.000Z [warn] lines',
    ]);
  });

  it('json: one object per message with time, level and msg; newlines and quotes escaped', () => {
    const { lines, log } = logger('info', 'json');
    log.error('cannot open "x"\nsecond line');
    log.info('plain');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toEqual({ time: '2026-12-07T10:00:00.000Z', level: 'error', msg: 'cannot open "x"\nsecond line' });
    expect(JSON.parse(lines[1]!)).toEqual({ time: '2026-12-07T10:00:00.000Z', level: 'info', msg: 'plain' });
  });

  it('levels filter both formats: info drops debug; debug keeps it', () => {
    for (const format of ['text', 'json'] as const) {
      const info = logger('info', format);
      info.log.debug('hidden');
      info.log.info('shown');
      expect(info.lines).toHaveLength(1);
      const debug = logger('debug', format);
      debug.log.debug('now shown');
      expect(debug.lines).toHaveLength(1);
      expect(parseLogLine(debug.lines[0]!)).toEqual({ level: 'debug', msg: 'now shown' });
    }
  });

  it('parseLogLine reads both formats back, and takes anything else as text', () => {
    expect(parseLogLine('2026-12-07T10:00:00.000Z [error] bad thing')).toEqual({ level: 'error', msg: 'bad thing' });
    expect(parseLogLine('{"time":"t","level":"warn","msg":"careful"}')).toEqual({ level: 'warn', msg: 'careful' });
    expect(parseLogLine('node: a crash on stderr')).toEqual({ level: undefined, msg: 'node: a crash on stderr' });
    expect(parseLogLine('{not json')).toEqual({ level: undefined, msg: '{not json' });
  });
});

describe('debug lines can be enabled', () => {
  it("the idle compactor's line (heap compacted) fires at level debug only", async () => {
    for (const [level, expected] of [
      ['debug', 1],
      ['info', 0],
    ] as const) {
      const { lines, log } = logger(level, 'json');
      const c = new IdleCompactor({ busy: () => false, activity: () => 1, logger: log, quietMs: 1, startQuietMs: 1, compact: () => true });
      c.poke();
      await new Promise((r) => setTimeout(r, 30));
      c.stop();
      expect(lines.filter((l) => parseLogLine(l).msg.startsWith('idle: heap compacted'))).toHaveLength(expected);
    }
  });

  it("failover's line (preferred master still not reachable) fires at level debug", async () => {
    const { lines, log } = logger('debug', 'text');
    const abort = new AbortController();
    let probes = 0;
    const target = (describe: string, probe: () => Promise<void>): MasterTarget => ({ describe, probe, connect: () => Promise.reject(new Error('unused')) });
    const watch = watchPreferred({
      targets: [
        target('first:1', () => {
          if (++probes >= 2) abort.abort();
          return Promise.reject(new Error('ECONNREFUSED'));
        }),
        target('second:2', () => Promise.resolve()),
      ],
      states: [new MasterBackoff(), new MasterBackoff()],
      attached: 1,
      idle: new IdleGate(
        { runningCount: 0 },
        () => 0,
        async () => {},
      ),
      maxdelayS: 1,
      probeIntervalMs: 1,
      logger: log,
      now: () => 1e9,
      sleep: async () => {},
      random: () => 0,
      signal: abort.signal,
    });
    expect(await watch).toBeUndefined();
    expect(lines).toContain('2026-12-07T10:00:00.000Z [debug] preferred master first:1 still not reachable: ECONNREFUSED');
  });
});
