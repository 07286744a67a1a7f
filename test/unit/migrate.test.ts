// `bbagent create-worker --from-buildbot-worker`: basedirs made by the REAL `buildbot-worker create-worker` (3.7)
// are migrated and must give the bbagent.json that `bbagent create-worker` writes for the same options; edited
// tacs are refused naming the line, with nothing written. The built bundle is run as an operator runs it.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { findExecutable } from '../../scripts/harness/process.js';

const BUILDBOT_WORKER = findExecutable('buildbot-worker');

let tmp: string;
beforeAll(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-migrate-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
const fresh = (label: string): string => path.join(tmp, `${label}-${++counter}`);

type Run = { code: number | null; stdout: string; stderr: string };

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BBAGENT_')));
}

function bbagent(args: string[]): Run {
  const r = spawnSync(process.execPath, [BUNDLE, ...args], { encoding: 'utf8', env: cleanEnv(), cwd: tmp, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function buildbotWorker(args: string[]): Run {
  const r = spawnSync(BUILDBOT_WORKER!, args, { encoding: 'utf8', cwd: tmp, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readJson(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')) as Record<string, unknown>;
}

/** A refusal: exit 2, one line on stderr, nothing on stdout. */
function expectRefused(r: Run, re: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(re);
}

/** A password with what Python's repr() escapes (quote, backslash, tab) and what it keeps (non-ASCII). */
const PASSWORD = `p@ss"w'd\\x\tÿé€`;

// buildbot-worker's options, and bbagent's for the same worker (bbagent's keepalive default is 60, not 600).
const COMBINATIONS: { name: string; buildbot: string[]; bbagent: string[] }[] = [
  { name: 'defaults', buildbot: [], bbagent: ['--keepalive=600'] },
  {
    name: 'umask, keepalive, maxdelay, TLS, leftover dirs',
    buildbot: ['--umask=0o22', '--keepalive=30', '--maxdelay=10', '--use-tls', '--delete-leftover-dirs'],
    bbagent: ['--umask=0o22', '--keepalive=30', '--maxdelay=10', '--use-tls', '--delete-leftover-dirs'],
  },
  {
    name: 'msgpack, shutdown by file, retries, cpus, logs',
    buildbot: ['--protocol=msgpack_experimental_v7', '--allow-shutdown=file', '--maxretries=3', '--numcpus=2', '--log-count=None', '--log-size=12345'],
    bbagent: ['--protocol=msgpack', '--allow-shutdown=file', '--maxretries=3', '--numcpus=2', '--log-count=None', '--log-size=12345', '--keepalive=600'],
  },
  {
    name: 'relocatable, no log rotation, decimal umask, shutdown by signal',
    buildbot: ['--relocatable', '--no-logrotate', '--umask=18', '-a', 'signal', '--log-count=3'],
    bbagent: ['--relocatable', '--no-logrotate', '--umask=18', '-a', 'signal', '--log-count=3', '--keepalive=600'],
  },
  // buildbot-worker writes `umask = 022`, which Python 3 cannot even compile: read as the octal it means
  { name: 'legacy octal umask', buildbot: ['--umask=022'], bbagent: ['--umask=0o22', '--keepalive=600'] },
];

describe.skipIf(BUILDBOT_WORKER === undefined)('migrating a basedir made by buildbot-worker create-worker', () => {
  for (const combo of COMBINATIONS) {
    it(`gives what bbagent create-worker writes for the same options: ${combo.name}`, () => {
      const old = fresh('bw');
      const made = buildbotWorker(['create-worker', '-q', ...combo.buildbot, old, 'master.example:19989', 'w-1', PASSWORD]);
      expect(made.code, made.stdout + made.stderr).toBe(0);
      const adminText = 'Ops <ops@example.invalid>\n';
      writeFileSync(path.join(old, 'info', 'admin'), adminText);

      const migrated = bbagent(['create-worker', '--from-buildbot-worker', old]);
      expect(migrated.stderr).toBe('');
      expect(migrated.code).toBe(0);
      expect(migrated.stdout).toContain(`read ${path.join(old, 'buildbot.tac')}\n`);
      expect(migrated.stdout).toContain(`worker configured in ${old}\n`);

      const direct = fresh('bb');
      expect(bbagent(['create-worker', '-q', ...combo.bbagent, direct, 'master.example:19989', 'w-1', PASSWORD]).code).toBe(0);
      const want = readJson(direct);
      const got = readJson(old);
      expect(got).toEqual({ ...want, basedir: want['basedir'] === '.' ? '.' : old });
      // info/ is kept as the admin left it; buildbot-worker's files are all still there
      expect(readFileSync(path.join(old, 'info', 'admin'), 'utf8')).toBe(adminText);
      expect(readdirSync(old).sort()).toEqual(['bbagent.json', 'buildbot.tac', 'info']);
    });
  }

  it('writes to a TARGET, copying info/ and leaving the old basedir as it was', () => {
    const old = fresh('bw');
    expect(buildbotWorker(['create-worker', '-q', old, 'm.example', 'w', PASSWORD]).code).toBe(0);
    writeFileSync(path.join(old, 'info', 'access_uri'), 'ssh://w.example\n');
    const target = fresh('target');
    const r = bbagent(['create-worker', '--from-buildbot-worker', old, '--keepalive=60', target]);
    expect(r.code, r.stderr).toBe(0);
    expect(readJson(target)).toMatchObject({ basedir: target, masterHost: 'm.example', masterPort: 9989, name: 'w', password: PASSWORD, keepalive: 60 });
    for (const f of ['admin', 'host', 'access_uri']) {
      expect(readFileSync(path.join(target, 'info', f), 'utf8')).toBe(readFileSync(path.join(old, 'info', f), 'utf8'));
    }
    expect(readdirSync(old).sort()).toEqual(['buildbot.tac', 'info']);
    expect(r.stdout).not.toContain('note: keepalive');
  });

  it('says when buildbot-worker still runs there, and that keepalive 600 was carried over', () => {
    const old = fresh('bw');
    expect(buildbotWorker(['create-worker', '-q', old, 'm.example', 'w', PASSWORD]).code).toBe(0);
    writeFileSync(path.join(old, 'twistd.pid'), `${process.pid}`); // a live process
    const r = bbagent(['create-worker', '--from-buildbot-worker', old]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`buildbot-worker is still running in ${old} (pid ${process.pid}): stop it ("buildbot-worker stop ${old}")`);
    expect(r.stdout).toContain("note: keepalive 600 s (buildbot-worker's default) carried over");
  });

  it('refuses an existing bbagent.json without --force, and a basedir that is not a buildbot-worker one', () => {
    const old = fresh('bw');
    expect(buildbotWorker(['create-worker', '-q', old, 'm.example', 'w', PASSWORD]).code).toBe(0);
    expect(bbagent(['create-worker', '-q', '--from-buildbot-worker', old]).code).toBe(0);
    const again = bbagent(['create-worker', '-q', '--from-buildbot-worker', old]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/bbagent\.json already exists; use --force/);
    expect(bbagent(['create-worker', '-q', '--force', '--from-buildbot-worker', old]).code).toBe(0);

    const empty = fresh('empty');
    mkdirSync(empty);
    expectRefused(bbagent(['create-worker', '--from-buildbot-worker', empty]), /buildbot\.tac: not found: is this a buildbot-worker basedir\?/);
    expect(readdirSync(empty)).toEqual([]);
  });

  it("refuses 3.7's unquoted --proxy-connection-string (a tac Python cannot run), naming the line", () => {
    const old = fresh('bw');
    expect(buildbotWorker(['create-worker', '-q', '--proxy-connection-string=tcp:host=proxy:port=3128', old, 'm', 'w', PASSWORD]).code).toBe(0);
    const line = lineOf(old, 'proxy_connection_string =');
    expectRefused(
      bbagent(['create-worker', '--from-buildbot-worker', old]),
      new RegExp(`buildbot\\.tac line ${line}: "proxy_connection_string = tcp:host=proxy:port=3128": the value is not a Python literal`),
    );
    expect(existsSync(path.join(old, 'bbagent.json'))).toBe(false);
  });
});

/** The 1-based line of `dir`/buildbot.tac that starts with `start`. */
function lineOf(dir: string, start: string): number {
  return (
    readFileSync(path.join(dir, 'buildbot.tac'), 'utf8')
      .split('\n')
      .findIndex((l) => l.startsWith(start)) + 1
  );
}

/** A tac as create-worker writes it, with `settings` as its settings block (for forms 3.7 cannot write). */
function tac(settings: string, call: string, extra = ''): string {
  return `
import os

from buildbot_worker.bot import Worker
from twisted.application import service

basedir = '.'
rotateLength = 10000000
maxRotatedFiles = 10

# if this is a relocatable tac file, get the directory containing the TAC
if basedir == '.':
    import os.path
    basedir = os.path.abspath(os.path.dirname(__file__))

# note: this line is matched against to check that this is a worker
# directory; do not edit it.
application = service.Application('buildbot-worker')
${extra}
try:
    from twisted.python.logfile import LogFile
    from twisted.python.log import ILogObserver, FileLogObserver
    logfile = LogFile.fromFullPath(
        os.path.join(basedir, "twistd.log"), rotateLength=rotateLength,
        maxRotatedFiles=maxRotatedFiles)
    application.setComponent(ILogObserver, FileLogObserver(logfile).emit)
except ImportError:
    # probably not yet twisted 8.2.0 and beyond, can't set log yet
    pass

${settings}

s = ${call}
s.setServiceParent(application)
`;
}

function basedirWithTac(text: string): string {
  const dir = fresh('tac');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'buildbot.tac'), text);
  return dir;
}

describe('migrating other tacs', () => {
  it("reads newer buildbot-worker's connection_string form (host and port None) and the older try/except log block", () => {
    const dir = basedirWithTac(
      tac(
        `buildmaster_host = None  # 'm.example'
port = None  # 19989
connection_string = 'tls:host=m.example:port=19989'
workername = 'w'
passwd = 'pw-secret'
keepalive = 600
umask = None
maxdelay = 300
numcpus = None
allow_shutdown = None
maxretries = None
use_tls = 0
delete_leftover_dirs = 0
proxy_connection_string = None
protocol = 'pb'`,
        `Worker(buildmaster_host, port, workername, passwd, basedir,
           keepalive, umask=umask, maxdelay=maxdelay,
           numcpus=numcpus, allow_shutdown=allow_shutdown,
           maxRetries=maxretries, protocol=protocol, useTls=use_tls,
           delete_leftover_dirs=delete_leftover_dirs,
           connection_string=connection_string,
           proxy_connection_string=proxy_connection_string)`,
      ),
    );
    expect(bbagent(['create-worker', '-q', '--from-buildbot-worker', dir]).code).toBe(0);
    const direct = fresh('bb');
    const args = [
      'create-worker',
      '-q',
      '--relocatable',
      '--keepalive=600',
      '--connection-string=tls:host=m.example:port=19989',
      direct,
      'm.example:19989',
      'w',
      'pw-secret',
    ];
    expect(bbagent(args).code).toBe(0);
    expect(readJson(dir)).toEqual(readJson(direct));
  });

  it('carries a proxy over; refuses what bbagent has no setting for', () => {
    const settings = `buildmaster_host = 'm'\nport = 9989\nworkername = 'w'\npasswd = 'pw-secret'\nkeepalive = 600`;
    const proxied = basedirWithTac(
      tac(settings, `Worker(buildmaster_host, port, workername, passwd, basedir, keepalive, proxy_connection_string='tcp:host=p:port=3128')`),
    );
    expect(bbagent(['create-worker', '-q', '--from-buildbot-worker', proxied]).code).toBe(0);
    expect(readJson(proxied)['proxyConnectionString']).toBe('tcp:host=p:port=3128');

    const encoding = basedirWithTac(tac(settings, `Worker(buildmaster_host, port, workername, passwd, basedir, keepalive, unicode_encoding='latin-1')`));
    expectRefused(
      bbagent(['create-worker', '--from-buildbot-worker', encoding]),
      new RegExp(`line ${lineOf(encoding, 's = Worker')}: bbagent has no unicode_encoding setting`),
    );
  });

  it('refuses a hand-edited tac with code, naming the line, and writes nothing', () => {
    const base = `buildmaster_host = 'm'\nport = 9989\nworkername = 'w'\nkeepalive = 600`;
    const cases: { text: string; line: string; re: RegExp }[] = [
      {
        text: tac(`${base}\npasswd = open('/etc/bb-password').read().strip()`, 'Worker(buildmaster_host, port, workername, passwd, basedir, keepalive)'),
        line: 'passwd =',
        re: /"passwd = open\('\/etc\/bb-password'\)\.read\(\)\.strip\(\)": the value is not a Python literal/,
      },
      {
        text: tac(`${base}\npasswd = 'x'`, 'Worker(buildmaster_host, port, workername, passwd, basedir, keepalive)', 'import socket\n'),
        line: 'import socket',
        re: /"import socket": not a statement create-worker writes/,
      },
      {
        text: tac(
          `${base}\npasswd = 'x'\nif os.environ.get('CI'):\n    maxdelay = 5`,
          'Worker(buildmaster_host, port, workername, passwd, basedir, keepalive)',
        ),
        line: 'if os.environ',
        re: /"if os\.environ\.get\('CI'\):": not a statement create-worker writes/,
      },
      {
        text: tac(`${base}\npasswd = 'x'`, 'Worker(buildmaster_host, port, workername, passwd, basedir, keepalive, maxdelay=delay)'),
        line: 's = Worker',
        re: /"s = Worker\(.*": Worker's maxdelay is delay, which is not assigned a literal before/,
      },
    ];
    for (const c of cases) {
      const dir = basedirWithTac(c.text);
      expectRefused(
        bbagent(['create-worker', '--from-buildbot-worker', dir]),
        new RegExp(`${escape(path.join(dir, 'buildbot.tac'))} line ${lineOf(dir, c.line)}: ${c.re.source}`),
      );
      expect(readdirSync(dir)).toEqual(['buildbot.tac']);
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
