// The masters list and the proxy in the config: `masters` in the file (objects or HOST:PORT strings), the single
// master as a list of one, --master / BBAGENT_MASTERS over the file, a further worker's own list, and the
// endpoints each master gets (its own protocol and TLS, or the worker's).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createWorkerCommand } from '../../agent/cli/create-worker.js';
import { startCommand } from '../../agent/cli/start.js';
import { loadConfig, validateConfig } from '../../agent/config/load.js';
import { masterEndpoints } from '../../agent/connection/endpoint.js';

const base = { name: 'w', password: 'pw' };

describe('masters in the config', () => {
  it('reads a list of masters; masterHost/masterPort name the first; each entry takes the worker fields it leaves out', () => {
    const c = validateConfig(
      { ...base, protocol: 'msgpack', masters: [{ host: 'a.example', port: 9990 }, 'b.example:9991', { host: 'c', port: 9989, protocol: 'pb', useTls: true }] },
      'f',
      '/tmp',
    );
    expect(c.masterHost).toBe('a.example');
    expect(c.masterPort).toBe(9990);
    expect(c.failoverGrace).toBe(60);
    expect(masterEndpoints(c).map((m) => [m.host, m.port, m.protocol, m.tls])).toEqual([
      ['a.example', 9990, 'msgpack', false],
      ['b.example', 9991, 'msgpack', false],
      ['c', 9989, 'pb', true],
    ]);
  });

  it('keeps the single master valid: a list of one', () => {
    const c = validateConfig({ ...base, masterHost: 'm', masterPort: 1 }, 'f', '/tmp');
    expect(c.masters).toEqual([]);
    expect(masterEndpoints(c).map((m) => `${m.host}:${m.port}`)).toEqual(['m:1']);
  });

  it('refuses a malformed entry, a first entry the single master contradicts, and a top-level connectionString with a list', () => {
    expect(() => validateConfig({ ...base, masters: [{ host: 'a', port: 0 }] }, 'f', '/tmp')).toThrow(/^f: masters must be a list of masters in order/);
    expect(() => validateConfig({ ...base, masters: [{ host: 'a', port: 1, colour: 'red' }] }, 'f', '/tmp')).toThrow(/masters must be/);
    expect(() => validateConfig({ ...base, masterHost: 'x', masterPort: 1, masters: ['a:1'] }, 'f', '/tmp')).toThrow(
      /masterHost\/masterPort \(x:1\) overrides masters, whose first entry is a:1/,
    );
    expect(() => validateConfig({ ...base, connectionString: 'tcp:a:1', masters: ['a:1'] }, 'f', '/tmp')).toThrow(
      /connectionString and masters cannot both be set/,
    );
    expect(() => validateConfig({ ...base, masters: [] }, 'f', '/tmp')).toThrow(/required keys masterHost, masterPort are missing/);
  });

  it('--master on the command line (and BBAGENT_MASTERS) replace the file’s master and list', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-masters-'));
    writeFileSync(path.join(dir, 'bbagent.json'), JSON.stringify({ ...base, masterHost: 'old', masterPort: 9989, masters: ['old:9989', 'older:9989'] }));
    const flagged = loadConfig(dir, { masters: 'new1:1\nnew2' }, {});
    expect(flagged.masters).toEqual([
      { host: 'new1', port: 1 },
      { host: 'new2', port: 9989 },
    ]);
    expect([flagged.masterHost, flagged.masterPort]).toEqual(['new1', 1]);
    const env = loadConfig(dir, {}, { BBAGENT_MASTERS: 'e1:5, [::1]:6', BBAGENT_FAILOVER_GRACE: '5' });
    expect(env.masters.map((m) => `${m.host}:${m.port}`)).toEqual(['e1:5', '::1:6']);
    expect(env.failoverGrace).toBe(5);
    // a single master set more specifically than the file's list contradicts it: said, not guessed
    expect(() => loadConfig(dir, { masterHost: 'other' }, {})).toThrow(/overrides masters/);
    expect(() => loadConfig(dir, { masters: 'bad host:1' }, {})).toThrow(/^--master: masters must be a list of masters/);
  });

  it('a further worker has its own list, or its own single master, never the top level’s list', () => {
    const c = validateConfig(
      {
        ...base,
        masters: ['a:1', 'b:2'],
        workers: [
          { basedir: '/w2', name: 'w2', masters: ['c:3', 'd:4'] },
          { basedir: '/w3', name: 'w3', masterHost: 'e', masterPort: 5 },
          { basedir: '/w4', name: 'w4' },
        ],
      },
      'f',
      '/tmp',
    );
    const lists = c.workers.map((w) => masterEndpoints(w).map((m) => `${m.host}:${m.port}`));
    expect(lists).toEqual([['c:3', 'd:4'], ['e:5'], ['a:1', 'b:2']]);
    expect(c.workers[0]?.masterHost).toBe('c');
  });

  it('reads proxyConnectionString as a field of its own', () => {
    const c = validateConfig({ ...base, masterHost: 'm', masterPort: 1, proxyConnectionString: 'tcp:host=p:port=3128' }, 'f', '/tmp');
    expect(c.proxyConnectionString).toBe('tcp:host=p:port=3128');
    expect(() => validateConfig({ ...base, masterHost: 'm', masterPort: 1, proxyConnectionString: '' }, 'f', '/tmp')).toThrow(/proxyConnectionString must be/);
    // refused with the config, before the agent starts
    expect(() => validateConfig({ ...base, masterHost: 'm', masterPort: 1, proxyConnectionString: 'proxy:3128' }, 'f', '/tmp')).toThrow(
      /^f: proxyConnectionString must be a proxy endpoint \(tcp:host=HOST:port=PORT or http:\/\/HOST:PORT\) or null, got "proxy:3128"$/,
    );
  });
});

describe('create-worker --master and --proxy-connection-string', () => {
  it('writes the positional master first and each --master after it, and the proxy', async () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'bbagent-cw-')), 'w');
    const errors: string[] = [];
    const io = { out: () => {}, err: (l: string) => errors.push(l), env: {} };
    const code = await createWorkerCommand(
      ['--master', 'b.example:9991', '--master', '[::1]', '--proxy-connection-string', 'tcp:host=p:port=3128', dir, 'a.example:9990', 'w', 'pw'],
      io,
    );
    expect(errors).toEqual([]);
    expect(code).toBe(0);
    const written = JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')) as Record<string, unknown>;
    expect(written['masterHost']).toBe('a.example');
    expect(written['masters']).toEqual([
      { host: 'a.example', port: 9990 },
      { host: 'b.example', port: 9991 },
      { host: '::1', port: 9989 },
    ]);
    expect(written['proxyConnectionString']).toBe('tcp:host=p:port=3128');
    expect(loadConfig(dir, {}, {}).masters).toHaveLength(3);
  });
});

describe('start --master', () => {
  it('reads each --master as the next master of the list, and refuses a bad one naming the flag, before starting anything', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-start-'));
    writeFileSync(path.join(dir, 'bbagent.json'), JSON.stringify({ ...base, masterHost: 'm', masterPort: 1 }));
    const errors: string[] = [];
    const io = { out: () => {}, err: (l: string) => errors.push(l), env: {} };
    const code = await startCommand(['--nodaemon', '--master', 'a:1', '--master', 'bad host:2', dir], io);
    expect(code).not.toBe(0);
    expect(errors.join('\n')).toMatch(/--master: masters must be a list of masters in order.*got "a:1\\nbad host:2"/);
  });
});
