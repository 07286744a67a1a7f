// Reconnect policy: back-off, retry after a refused password, maxretries, stop.
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../agent/connection/backoff.js';
import { ConnectionManager, type LiveSession } from '../../agent/connection/manager.js';
import { AgentError } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';

function recordingLogger() {
  const lines: string[] = [];
  const logger: Logger = {
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
    debug: () => {},
  };
  return { lines, logger };
}

describe('backoff', () => {
  it('grows by 1.5x from 1 s, capped at maxdelay, plus jitter below 1 s', () => {
    expect([0, 1, 2, 3].map((a) => backoffDelayMs(a, 300, () => 0))).toEqual([1000, 1500, 2250, 3375]);
    expect(backoffDelayMs(50, 300, () => 0.5)).toBe(300_500);
  });
});

describe('ConnectionManager', () => {
  it('retries a refused password with one clear line per attempt, then gives up at maxretries', async () => {
    const { lines, logger } = recordingLogger();
    const delays: number[] = [];
    const m = new ConnectionManager({
      describe: 'm:1',
      maxdelayS: 300,
      maxretries: 2,
      logger,
      random: () => 0,
      sleep: async (ms) => void delays.push(ms),
      connect: () => Promise.reject(new AgentError('E_AUTH', "master refused worker 'w'")),
    });
    expect(await m.run()).toBe('gave-up');
    expect(lines.filter((l) => l.startsWith('error master refused'))).toHaveLength(3);
    expect(delays).toEqual([1500, 2250]);
  });

  it('reconnects after a session ends and resets the back-off after a success', async () => {
    const { logger } = recordingLogger();
    const delays: number[] = [];
    let attempts = 0;
    const m: ConnectionManager = new ConnectionManager({
      describe: 'm:1',
      maxdelayS: 300,
      maxretries: null,
      logger,
      random: () => 0,
      sleep: async (ms) => void delays.push(ms),
      connect: async (): Promise<LiveSession> => {
        attempts++;
        if (attempts === 1) throw new AgentError('E_REFUSED', 'refused');
        if (attempts === 3) {
          m.stop();
          return { closed: new Promise(() => {}), close: () => {} };
        }
        return { closed: Promise.resolve(), close: () => {} };
      },
    });
    expect(await m.run()).toBe('stopped');
    expect(attempts).toBe(3);
    expect(delays).toEqual([1500, 1000]);
  });
});
