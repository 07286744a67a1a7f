// Config loading: every refusal names its field and source; flags > environment > file > defaults; the file is
// written atomically with mode 0600; unknown keys are refused.

import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { envVarName, flagName, loadConfig, parseUmask, validateConfig, writeConfig } from '../../agent/config/load.js';
import { CONFIG_DEFAULTS, type AgentConfig } from '../../agent/config/schema.js';
import { AgentError } from '../../agent/errors.js';

const MINIMAL = { masterHost: 'master.example', masterPort: 9989, name: 'w1', password: 'secret' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeFile(obj: unknown): string {
  const file = path.join(dir, 'bbagent.json');
  writeFileSync(file, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return file;
}

/** The E_CONFIG error thrown by fn (fails the test when none is). */
function configError(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('E_CONFIG');
    expect((err as AgentError).message).not.toContain('\n');
    return err as AgentError;
  }
  throw new Error('expected an E_CONFIG error');
}

describe('validateConfig', () => {
  it('fills defaults and resolves basedir', () => {
    const c = validateConfig(MINIMAL, 'x.json', dir);
    expect(c).toEqual({ ...CONFIG_DEFAULTS, ...MINIMAL, basedir: dir });
    expect(validateConfig({ ...MINIMAL, basedir: '.' }, 'x.json', dir).basedir).toBe(dir);
    expect(validateConfig({ ...MINIMAL, basedir: '/abs/where' }, 'x.json', dir).basedir).toBe(path.resolve('/abs/where'));
  });

  it('accepts the umask as a number or an octal string, and buildbot-worker protocol spelling', () => {
    expect(validateConfig({ ...MINIMAL, umask: '0o022' }, 's', dir).umask).toBe(0o22);
    expect(validateConfig({ ...MINIMAL, umask: 18 }, 's', dir).umask).toBe(0o22);
    expect(validateConfig({ ...MINIMAL, protocol: 'msgpack_experimental_v7' }, 's', dir).protocol).toBe('msgpack');
    expect(validateConfig({ ...MINIMAL, protocol: 'pb', name: 'a:b' }, 's', dir).name).toBe('a:b');
  });

  const bad: [string, unknown, RegExp][] = [
    ['basedir', '', /basedir must be a non-empty path, got ""/],
    ['masterHost', 'http://m', /masterHost must be a host name or IP address \(not a URL\), got "http:\/\/m"/],
    ['masterHost', 5, /masterHost must be .*, got 5/],
    ['masterPort', 'abc', /masterPort must be an integer from 1 to 65535, got "abc"/],
    ['masterPort', 0, /masterPort must be an integer from 1 to 65535, got 0/],
    ['masterPort', 70000, /masterPort .*got 70000/],
    ['masterPort', 99.5, /masterPort .*got 99.5/],
    ['name', '', /name must be a non-empty string/],
    ['password', 42, /password must be a string, got a number$/],
    ['protocol', 'http', /protocol must be "pb" or "msgpack", got "http"/],
    ['keepalive', -1, /keepalive must be an integer number of seconds >= 0/],
    ['keepaliveTimeout', 0, /keepaliveTimeout must be an integer number of seconds >= 1 or null/],
    ['maxdelay', 0, /maxdelay must be an integer number of seconds >= 1, got 0/],
    ['maxretries', 'x', /maxretries must be an integer >= 0 or null/],
    ['umask', '0o999', /umask must be an octal umask/],
    ['umask', 0o1000, /umask must be .*got 512/],
    ['allowShutdown', 'yes', /allowShutdown must be "signal", "file" or null, got "yes"/],
    ['deleteLeftoverDirs', 'true', /deleteLeftoverDirs must be true or false, got "true"/],
    ['confineToBasedir', 'yes', /confineToBasedir must be true or false, got "yes"/],
    ['numcpus', 0, /numcpus must be an integer >= 1 or null/],
    ['useTls', 1, /useTls must be true or false, got 1/],
    ['connectionString', '', /connectionString must be a non-empty endpoint string or null/],
    ['logSize', 1.5, /logSize must be an integer number of bytes >= 0/],
    ['logCount', -2, /logCount must be an integer >= 0 or null/],
  ];
  it.each(bad)('refuses a bad %s, naming it and the source', (field, value, re) => {
    const err = configError(() => validateConfig({ ...MINIMAL, [field]: value }, '/w/bbagent.json', dir));
    expect(err.message).toMatch(/^\/w\/bbagent\.json: /);
    expect(err.message).toMatch(re);
  });

  it('never echoes the password', () => {
    const err = configError(() => validateConfig({ ...MINIMAL, password: ['hunter2'] }, 'f', dir));
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses unknown keys, naming them (with a suggestion when close)', () => {
    const err = configError(() => validateConfig({ ...MINIMAL, masterhost: 'x', colour: 'red' }, '/w/bbagent.json', dir));
    expect(err.message).toBe('/w/bbagent.json: unknown keys "masterhost" (did you mean "masterHost"?), "colour"');
  });

  it('refuses missing required keys and non-objects', () => {
    expect(configError(() => validateConfig({ masterHost: 'm' }, 'f.json', dir)).message).toBe('f.json: required keys masterPort, name, password are missing');
    expect(configError(() => validateConfig([1], 'f.json', dir)).message).toMatch(/^f\.json: expected a JSON object/);
  });

  it("refuses ':' in the name with msgpack", () => {
    expect(configError(() => validateConfig({ ...MINIMAL, name: 'a:b', protocol: 'msgpack' }, 'f.json', dir)).message).toMatch(
      /^f\.json: name must not contain ':' with protocol msgpack/,
    );
  });
});

describe('loadConfig', () => {
  it('layers flags over environment over file over defaults', () => {
    writeFile({ ...MINIMAL, maxdelay: 100, keepalive: 30, numcpus: 4 });
    const env = { BBAGENT_MAXDELAY: '200', BBAGENT_KEEPALIVE: '40', BBAGENT_MASTER_HOST: 'env-host', BBAGENT_UNRELATED: 'x' };
    const c = loadConfig(dir, { maxdelay: '300', masterHost: 'flag-host' }, env);
    expect(c.maxdelay).toBe(300); // flag over env over file
    expect(c.masterHost).toBe('flag-host'); // flag over env over file
    expect(c.keepalive).toBe(40); // env over file
    expect(c.numcpus).toBe(4); // file over default
    expect(c.logSize).toBe(CONFIG_DEFAULTS.logSize); // default
    expect(c.basedir).toBe(dir);
  });

  it('parses environment text for every kind of field', () => {
    writeFile(MINIMAL);
    const c = loadConfig(
      dir,
      {},
      {
        BBAGENT_USE_TLS: 'yes',
        BBAGENT_DELETE_LEFTOVER_DIRS: 'false',
        BBAGENT_CONFINE_TO_BASEDIR: 'on',
        BBAGENT_UMASK: '022',
        BBAGENT_MAXRETRIES: 'None',
        BBAGENT_NUMCPUS: '8',
        BBAGENT_ALLOW_SHUTDOWN: 'file',
        BBAGENT_PROTOCOL: 'pb',
        BBAGENT_LOG_COUNT: 'null',
        BBAGENT_CONNECTION_STRING: 'tls:m:9989',
        BBAGENT_PASSWORD: ' with spaces ',
        BBAGENT_LOG_SIZE: '', // empty: unset
      },
    );
    expect(c).toMatchObject({
      useTls: true,
      deleteLeftoverDirs: false,
      confineToBasedir: true,
      umask: 0o22,
      maxretries: null,
      numcpus: 8,
      allowShutdown: 'file',
      protocol: 'pb',
      logCount: null,
      connectionString: 'tls:m:9989',
      password: ' with spaces ',
      logSize: CONFIG_DEFAULTS.logSize,
    });
  });

  it('names the environment variable or flag that holds a bad value', () => {
    writeFile(MINIMAL);
    expect(configError(() => loadConfig(dir, {}, { BBAGENT_MASTER_PORT: 'abc' })).message).toBe(
      'BBAGENT_MASTER_PORT: masterPort must be an integer from 1 to 65535, got "abc"',
    );
    expect(configError(() => loadConfig(dir, { maxdelay: 'soon' }, {})).message).toBe(
      '--maxdelay: maxdelay must be an integer number of seconds >= 1, got "soon"',
    );
    expect(configError(() => loadConfig(dir, { useTls: 'maybe' }, {})).message).toMatch(/^--use-tls: useTls must be true or false/);
  });

  it('names the file for bad values, bad JSON, unknown keys and a missing file', () => {
    const file = writeFile({ ...MINIMAL, masterPort: 'abc' });
    expect(configError(() => loadConfig(dir, {}, {})).message).toBe(`${file}: masterPort must be an integer from 1 to 65535, got "abc"`);
    writeFile('{ "masterHost": ');
    expect(configError(() => loadConfig(dir, {}, {})).message).toMatch(new RegExp(`^${file}: not valid JSON: `));
    writeFile({ ...MINIMAL, extra: 1 });
    expect(configError(() => loadConfig(dir, {}, {})).message).toBe(`${file}: unknown key "extra"`);
    rmSync(file);
    expect(configError(() => loadConfig(dir, {}, {})).message).toMatch(new RegExp(`^${file}: not found`));
  });

  it('lets the environment supply a required key the file lacks, and names both when neither does', () => {
    const file = writeFile({ masterHost: 'm', masterPort: 1, name: 'n' });
    expect(loadConfig(dir, {}, { BBAGENT_PASSWORD: 'pw' }).password).toBe('pw');
    expect(configError(() => loadConfig(dir, {}, {})).message).toBe(`${file}: required key password is missing (or set BBAGENT_PASSWORD)`);
  });

  it('maps field names to environment variables and flags', () => {
    expect(envVarName('masterHost')).toBe('BBAGENT_MASTER_HOST');
    expect(envVarName('maxdelay')).toBe('BBAGENT_MAXDELAY');
    expect(envVarName('deleteLeftoverDirs')).toBe('BBAGENT_DELETE_LEFTOVER_DIRS');
    expect(flagName('connectionString')).toBe('--connection-string');
  });

  it('parses umasks as buildbot-worker accepts them', () => {
    expect(parseUmask('0o22')).toBe(0o22);
    expect(parseUmask('022')).toBe(0o22);
    expect(parseUmask('18')).toBe(18);
    expect(parseUmask('0')).toBe(0);
    expect(parseUmask('089')).toBeUndefined();
    expect(parseUmask('0o1000')).toBeUndefined();
    expect(parseUmask('-1')).toBeUndefined();
  });
});

describe('writeConfig', () => {
  const full: AgentConfig = { ...CONFIG_DEFAULTS, ...MINIMAL, basedir: '', umask: 0o27, maxretries: 3 };

  it('writes atomically with mode 0600 and reads back the same config', () => {
    const file = writeConfig(dir, { ...full, basedir: dir });
    expect(file).toBe(path.join(dir, 'bbagent.json'));
    expect(readdirSync(dir)).toEqual(['bbagent.json']); // no temporary file left behind
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(raw['umask']).toBe('0o027');
    expect(raw['basedir']).toBe(dir);
    expect(loadConfig(dir, {}, {})).toEqual({ ...full, basedir: dir });
  });

  it('replaces an existing file whole (rename over it)', () => {
    writeFile('old contents that are not JSON');
    const before = statSync(path.join(dir, 'bbagent.json')).ino;
    writeConfig(dir, { ...full, basedir: dir, name: 'w2' });
    expect(loadConfig(dir, {}, {}).name).toBe('w2');
    if (process.platform !== 'win32') expect(statSync(path.join(dir, 'bbagent.json')).ino).not.toBe(before);
  });

  it("stores '.' for a relocatable config, which loads as the file's directory", () => {
    writeConfig(dir, { ...full, basedir: dir }, { relocatable: true });
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')).basedir).toBe('.');
    expect(loadConfig(dir, {}, {}).basedir).toBe(dir);
  });

  it('refuses to write an invalid config and leaves nothing behind', () => {
    configError(() => writeConfig(dir, { ...full, basedir: dir, masterPort: 0 }));
    expect(readdirSync(dir)).toEqual([]);
  });
});
