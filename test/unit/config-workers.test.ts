// bbagent.json's `workers`: each entry is a complete worker over the top level; every refusal is one line naming
// the entry and the field; basedirs distinct and never nested; no name twice on one master.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, validateConfig } from '../../agent/config/load.js';
import { FIELD_SCOPE } from '../../agent/config/workers.js';
import { AgentError } from '../../agent/errors.js';

const TOP = { basedir: 'w1', masterHost: 'master.example', masterPort: 9989, name: 'w1', password: 'secret-one' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-workers-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function refusal(raw: unknown): string {
  try {
    validateConfig(raw, '/w/bbagent.json', dir);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('E_CONFIG');
    const message = (err as AgentError).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected an E_CONFIG error');
}

describe('workers', () => {
  it('a config without workers has none (one worker, as before)', () => {
    expect(validateConfig(TOP, 's', dir).workers).toEqual([]);
  });

  it("an entry is the top level's settings with its own over them; its basedir resolves against the file's directory", () => {
    const c = validateConfig(
      { ...TOP, keepalive: 30, umask: '0o027', workers: [{ basedir: 'w2', name: 'w2', protocol: 'msgpack', masterPort: 9990, password: 'other-pw' }] },
      's',
      dir,
    );
    expect(c.basedir).toBe(path.join(dir, 'w1'));
    const [w2] = c.workers;
    expect(w2).toMatchObject({
      basedir: path.join(dir, 'w2'),
      name: 'w2',
      protocol: 'msgpack',
      masterHost: 'master.example',
      masterPort: 9990,
      password: 'other-pw',
      keepalive: 30,
      umask: 0o27,
    });
    expect(w2).not.toHaveProperty('workers');
  });

  it("an entry naming its own master does not inherit the top level's connection string", () => {
    const top = { ...TOP, connectionString: 'tls:host=a.example:port=1' };
    const [own, inherited] = validateConfig(
      {
        ...top,
        workers: [
          { basedir: 'w2', masterHost: 'b.example' },
          { basedir: 'w3', name: 'w3' },
        ],
      },
      's',
      dir,
    ).workers;
    expect(own?.connectionString).toBeNull();
    expect(inherited?.connectionString).toBe('tls:host=a.example:port=1');
  });

  it('the environment and flags set the top level; entries inherit them unless they set the field', () => {
    writeFileSync(
      path.join(dir, 'bbagent.json'),
      JSON.stringify({
        ...TOP,
        workers: [
          { basedir: 'w2', name: 'w2' },
          { basedir: 'w3', name: 'w3', password: 'own-pw' },
        ],
      }),
    );
    const c = loadConfig(dir, { maxdelay: '7' }, { BBAGENT_PASSWORD: 'from-env' });
    expect([c.password, ...c.workers.map((w) => w.password)]).toEqual(['from-env', 'from-env', 'own-pw']);
    expect(c.workers.map((w) => w.maxdelay)).toEqual([7, 7]);
  });

  it('a bad value names the entry and the field', () => {
    expect(
      refusal({
        ...TOP,
        workers: [
          { basedir: 'w2', name: 'w2' },
          { basedir: 'w3', masterPort: 'x' },
        ],
      }),
    ).toBe('/w/bbagent.json: workers[1].masterPort must be an integer from 1 to 65535, got "x"');
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', password: 5 }] })).toBe('/w/bbagent.json: workers[0].password must be a string, got a number');
  });

  it('unknown keys are refused as at the top level, with a suggestion', () => {
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', masterhost: 'x', colour: 'red' }] })).toBe(
      '/w/bbagent.json: unknown keys "workers[0].masterhost" (did you mean "masterHost"?), "workers[0].colour"',
    );
    expect(refusal({ ...TOP, worker: [] })).toBe('/w/bbagent.json: unknown key "worker" (did you mean "workers"?)');
  });

  it('an agent-wide field in an entry is refused, naming it', () => {
    const agentWide = Object.entries(FIELD_SCOPE)
      .filter(([, scope]) => scope === 'agent')
      .map(([f]) => f);
    expect(agentWide).toEqual(expect.arrayContaining(['umask', 'logSize', 'logCount', 'agentOutputRate', 'agentOutputBurst', 'allowShutdown']));
    for (const field of agentWide) {
      expect(refusal({ ...TOP, workers: [{ basedir: 'w2', name: 'w2', [field]: null }] })).toBe(
        `/w/bbagent.json: workers[0].${field} is agent-wide: set it at the top level only`,
      );
    }
  });

  it('an entry without basedir, a non-list, a non-object are refused', () => {
    expect(refusal({ ...TOP, workers: [{ name: 'w2' }] })).toBe(
      '/w/bbagent.json: workers[0].basedir is missing: each worker needs a base directory of its own',
    );
    expect(refusal({ ...TOP, workers: { basedir: 'w2' } })).toMatch(/^\/w\/bbagent.json: workers must be a list of objects of settings, got \{"basedir/);
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', name: 'w2' }, 'w3'] })).toBe('/w/bbagent.json: workers[1] must be an object of settings, got "w3"');
  });

  it('basedirs must be distinct', () => {
    expect(
      refusal({
        ...TOP,
        workers: [
          { basedir: 'w2', name: 'w2' },
          { basedir: './w2/', name: 'w3' },
        ],
      }),
    ).toBe(`/w/bbagent.json: workers[1].basedir ${path.join(dir, 'w2')} is workers[0]'s basedir too: each worker needs its own`);
    expect(refusal({ ...TOP, workers: [{ basedir: 'w1', name: 'w2' }] })).toMatch(/: workers\[0\]\.basedir .* is the top level's basedir too/);
  });

  it('no basedir inside another, either way round; siblings with a common prefix are fine', () => {
    expect(refusal({ ...TOP, basedir: '.', workers: [{ basedir: 'w2', name: 'w2' }] })).toBe(
      `/w/bbagent.json: workers[0].basedir ${path.join(dir, 'w2')} is inside the top level's basedir ${dir}, whose leftover-directory clean-up ` +
        `would delete it (set "basedir" at the top level, e.g. "w1", to put the workers side by side)`,
    );
    expect(
      refusal({
        ...TOP,
        workers: [
          { basedir: 'w2/inner', name: 'w2' },
          { basedir: 'w2', name: 'w3' },
        ],
      }),
    ).toBe(
      `/w/bbagent.json: workers[0].basedir ${path.join(dir, 'w2', 'inner')} is inside workers[1]'s basedir ${path.join(dir, 'w2')}, ` +
        `whose leftover-directory clean-up would delete it`,
    );
    expect(
      validateConfig(
        {
          ...TOP,
          workers: [
            { basedir: 'w10', name: 'w10' },
            { basedir: '../elsewhere', name: 'w3' },
          ],
        },
        's',
        dir,
      ).workers,
    ).toHaveLength(2);
  });

  it('a name may repeat on another master, not on the same one (whatever the protocol)', () => {
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', protocol: 'msgpack' }] })).toBe(
      `/w/bbagent.json: workers[0].name "w1" on master master.example:9989 is the top level's already: give each worker its own name`,
    );
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', masterHost: 'MASTER.example' }] })).toMatch(/workers\[0\]\.name "w1" on master/);
    const c = validateConfig(
      {
        ...TOP,
        workers: [
          { basedir: 'w2', masterHost: 'other.example' },
          { basedir: 'w3', masterPort: 9999 },
        ],
      },
      's',
      dir,
    );
    expect(c.workers.map((w) => w.name)).toEqual(['w1', 'w1']);
  });

  it("msgpack's rule on names holds per entry", () => {
    expect(refusal({ ...TOP, workers: [{ basedir: 'w2', name: 'a:b', protocol: 'msgpack' }] })).toBe(
      `/w/bbagent.json: workers[0].name must not contain ':' with protocol msgpack, got "a:b"`,
    );
  });
});
