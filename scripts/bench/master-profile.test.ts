import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { masterProfileConfig } from './master-profile.js';

// The snippet in a Twisted reactor as master.cfg would run it (loaded in a thread), without a master: a worker
// thread and the reactor do some work between two SIGUSR2, and the window's profile names both.
const DRIVER = `
import os, signal, sys, threading, zlib
from twisted.internet import reactor, threads
exec(compile(sys.argv[1], 'master.cfg', 'exec'))
def work_in_thread():
    for _ in range(20):
        zlib.compress(os.urandom(1 << 16), 9)
def busy_reactor():
    return sum(i * i for i in range(200000))
def window():
    os.kill(os.getpid(), signal.SIGUSR2)
    d = threads.deferToThread(work_in_thread)
    busy_reactor()
    d.addCallback(lambda _: reactor.callLater(0.05, end))
def end():
    os.kill(os.getpid(), signal.SIGUSR2)
    reactor.callLater(0.2, reactor.stop)
reactor.callLater(0.2, window)
reactor.run()
`;

describe('masterProfileConfig', () => {
  it('writes, for a window between two SIGUSR2, what the reactor and the other threads spent', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-profile-'));
    execFileSync('/usr/bin/python3', ['-c', DRIVER, masterProfileConfig(dir)], { timeout: 30_000 });
    const text = readFileSync(path.join(dir, 'window.txt'), 'utf8');
    expect(text).toMatch(/^== reactor: \d+\.\d+ s/m);
    expect(text).toMatch(/busy_reactor/);
    expect(text).toMatch(/^== other threads: \d+\.\d+ s/m);
    expect(text).toMatch(/work_in_thread/);
    expect(text).toMatch(/zlib\.compress/);
  });
});
