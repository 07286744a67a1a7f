// The agent's shutdown: the stages of the stop signals over all workers' command hosts (drain until quiet,
// interrupt, exit now), the worker-initiated graceful shutdown, and the SIGHUP / shutdown.stamp watchers.

import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Session, SessionEnd } from '../../agent/connection/protocol.js';
import {
  drain,
  gracefulShutdown,
  onStopSignals,
  SHUTDOWN_FILE,
  ShutdownStages,
  watchShutdownFile,
  watchShutdownSignal,
  type Drainable,
  type SignalSource,
} from '../../agent/shutdown.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

/** A command host whose commands the test starts and ends. */
class FakeHost implements Drainable {
  startedCount = 0;
  interrupted: string[] = [];
  private readonly ends = new Set<() => void>();
  private waiting: (() => void)[] = [];

  get runningCount(): number {
    return this.ends.size;
  }

  /** Starts a command; returns the function that ends it. */
  startCommand(): () => void {
    this.startedCount++;
    const end = (): void => {
      this.ends.delete(end);
      if (this.ends.size === 0) for (const w of this.waiting.splice(0)) w();
    };
    this.ends.add(end);
    return end;
  }

  idle(): Promise<void> {
    return this.ends.size === 0 ? Promise.resolve() : new Promise((r) => this.waiting.push(r));
  }

  interruptAll(why: string): void {
    this.interrupted.push(why);
  }
}

const QUIET_MS = 60;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise's state right now. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await sleep(0);
  return done;
}

function stages(hosts: FakeHost[], graceMs = 10_000) {
  const logger = new RecordingLogger();
  let finished = 0;
  const s = new ShutdownStages({ hosts: () => hosts, finish: () => finished++, logger, drainQuietMs: QUIET_MS, interruptGraceMs: graceMs });
  return { s, logger, finished: () => finished };
}

describe('drain', () => {
  it('waits for the running commands of every host, then for a quiet period', async () => {
    const [a, b] = [new FakeHost(), new FakeHost()];
    const endA = a.startCommand();
    const endB = b.startCommand();
    const t0 = Date.now();
    const drained = drain(() => [a, b], QUIET_MS);
    endA();
    await sleep(QUIET_MS * 2);
    expect(await settled(drained)).toBe(false); // b still runs
    const tEnd = Date.now();
    endB();
    await drained;
    expect(Date.now() - tEnd).toBeGreaterThanOrEqual(QUIET_MS - 5);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3 * QUIET_MS - 5);
  });

  it('a command that starts and ends within the quiet period starts the wait again', async () => {
    const host = new FakeHost();
    const drained = drain(() => [host], QUIET_MS);
    await sleep(QUIET_MS / 3);
    host.startCommand()(); // the master's next step, at once over
    await sleep(QUIET_MS - QUIET_MS / 3 + 20);
    expect(await settled(drained)).toBe(false);
    await drained;
  });
});

describe('ShutdownStages', () => {
  it('first signal: says how many commands run, finishes once all hosts drained', async () => {
    const [a, b] = [new FakeHost(), new FakeHost()];
    const end = a.startCommand();
    b.startCommand()();
    const { s, logger, finished } = stages([a, b]);
    s.next();
    expect(logger.lines).toEqual(['info shutting down: waiting for 1 running command(s) to finish (signal again to interrupt them)']);
    await sleep(QUIET_MS * 2);
    expect(finished()).toBe(0);
    end();
    await sleep(QUIET_MS * 2);
    expect(finished()).toBe(1);
    expect(a.interrupted).toEqual([]);
  });

  it('second signal: interrupts every host, finishes after the grace at the latest', async () => {
    const [a, b] = [new FakeHost(), new FakeHost()];
    a.startCommand();
    const { s, logger, finished } = stages([a, b], QUIET_MS);
    s.next();
    s.next();
    expect(a.interrupted).toEqual(['worker shutting down']);
    expect(b.interrupted).toEqual(['worker shutting down']);
    expect(logger.lines[1]).toBe('info shutting down: interrupting running commands (signal again to exit at once)');
    expect(finished()).toBe(0);
    await sleep(QUIET_MS * 2);
    expect(finished()).toBe(1);
  });

  it('third signal: finishes at once', () => {
    const host = new FakeHost();
    host.startCommand();
    const { s, logger, finished } = stages([host]);
    s.next();
    s.next();
    s.next();
    expect(finished()).toBe(1);
    expect(logger.lines.at(-1)).toBe('info shutting down now');
  });
});

function session(requestShutdown?: () => Promise<void>): Session {
  const closed = new Promise<SessionEnd>(() => {});
  return requestShutdown ? { closed, close: () => {}, requestShutdown } : { closed, close: () => {} };
}

describe('gracefulShutdown', () => {
  it('asks the master through the session when the protocol can', async () => {
    const logger = new RecordingLogger();
    let asked = 0;
    let stopped = 0;
    gracefulShutdown(
      session(async () => void asked++),
      'pb',
      'we got SIGHUP',
      () => stopped++,
      logger,
    );
    expect([asked, stopped]).toEqual([1, 0]);
    expect(logger.lines).toEqual([
      'info Initiating shutdown because we got SIGHUP',
      'info Telling the master we want to shutdown after any running builds are finished',
    ]);
  });

  it('a failed request is logged, and the worker keeps running', async () => {
    const logger = new RecordingLogger();
    let stopped = 0;
    gracefulShutdown(
      session(() => Promise.reject(new Error('gone'))),
      'pb',
      'x',
      () => stopped++,
      logger,
    );
    await sleep(0);
    expect(stopped).toBe(0);
    expect(logger.lines.at(-1)).toBe('warn callRemote("shutdown") failed: Error: gone');
  });

  it('without the request (msgpack), or without a session, the worker stops now', () => {
    const logger = new RecordingLogger();
    let stopped = 0;
    gracefulShutdown(session(), 'msgpack', 'x', () => stopped++, logger);
    gracefulShutdown(undefined, 'pb', 'y', () => stopped++, logger);
    expect(stopped).toBe(2);
    expect(logger.lines).toEqual([
      'info Initiating shutdown because x',
      'info msgpack has no worker-initiated shutdown: shutting down NOW',
      'info Initiating shutdown because y',
      'info No active connection, shutting down NOW',
    ]);
  });
});

describe('signal and file watchers', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTERM and SIGINT step the stages, logged; the handlers go when asked', () => {
    const source = new EventEmitter() as unknown as SignalSource & EventEmitter;
    const logger = new RecordingLogger();
    let steps = 0;
    const off = onStopSignals(() => steps++, logger, source);
    source.emit('SIGTERM', 'SIGTERM');
    source.emit('SIGINT', 'SIGINT');
    off();
    source.emit('SIGTERM', 'SIGTERM');
    expect(steps).toBe(2);
    expect(logger.lines).toEqual(['info received SIGTERM', 'info received SIGINT']);
    expect(source.listenerCount('SIGTERM') + source.listenerCount('SIGINT')).toBe(0);
  });

  it('SIGHUP asks for a graceful shutdown', () => {
    const source = new EventEmitter() as unknown as SignalSource & EventEmitter;
    const logger = new RecordingLogger();
    const whys: string[] = [];
    const off = watchShutdownSignal((why) => whys.push(why), logger, source);
    source.emit('SIGHUP');
    off();
    source.emit('SIGHUP');
    expect(whys).toEqual(['we got SIGHUP']);
    expect(logger.lines).toEqual(['info Setting up SIGHUP handler to initiate shutdown']);
  });

  it('a touched shutdown.stamp asks once per touch; one there at start does not', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-shutdown-'));
    const stamp = path.join(dir, SHUTDOWN_FILE);
    writeFileSync(stamp, '');
    const logger = new RecordingLogger();
    const whys: string[] = [];
    const off = watchShutdownFile(dir, (why) => whys.push(why), logger, 10);
    try {
      await sleep(50);
      expect(whys).toEqual([]);
      const later = new Date(Date.now() + 5000);
      utimesSync(stamp, later, later);
      await sleep(50);
      expect(whys).toEqual([`${stamp} was touched`]);
      expect(logger.lines).toEqual([`info Watching ${stamp}'s mtime to initiate shutdown`]);
    } finally {
      off();
    }
  });
});

describe('a drain request (bbagent stop --drain, the Windows service stop)', () => {
  it('starts the first stage once: a second request is "already", and the agent finishes when the command ends', async () => {
    const h = new FakeHost();
    const end = h.startCommand();
    const { s, logger, finished } = stages([h]);
    expect(s.draining).toBe(false);
    expect(s.drain('test')).toBe('started');
    expect(s.draining).toBe(true);
    expect(s.drain('again')).toBe('already');
    expect(logger.lines.filter((l) => l.includes('drain requested'))).toHaveLength(1);
    expect(h.interrupted).toEqual([]);
    end();
    await pollFor(() => finished() === 1);
    expect(h.interrupted).toEqual([]);
  });

  it('interrupts what still runs once its timeout passed (the second stage)', async () => {
    const h = new FakeHost();
    h.startCommand();
    const { s, finished } = stages([h], 50);
    s.drain('test', 1);
    await pollFor(() => h.interrupted.length === 1, 5000);
    expect(h.interrupted).toEqual(['worker shutting down']);
    await pollFor(() => finished() >= 1);
  });
});

/** Resolves once `cond` holds (checked every 10 ms), fails after `ms`. */
async function pollFor(cond: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(10);
  }
}
