// confineToBasedir and rmdir's guard of BASEDIR: the path checks on real files and symlinks, every command of
// the table refusing paths that lead out (absolute, '..', a symlink) with nothing outside touched, and the
// start-up warning for a master reached in cleartext.

import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { checkConfined, ConfinementError, removalProtection } from '../../agent/commands/confine.js';
import { MAX_LINK_HOPS, resolveFollowingLinks } from '../../agent/fs/follow-links.js';
import { PyOSError } from '../../agent/py/os-error.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import type { CommandArgs, CommandEnv, RemoteReader, RemoteWriter } from '../../agent/commands/types.js';
import { Worker } from '../../agent/worker/worker.js';
import { cleartextWarning, isLoopbackHost } from '../../agent/connection/cleartext.js';
import { silentLogger } from '../../agent/log.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingChannel } from '../helpers/recording-channel.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { snapshot } from '../helpers/fs-snapshot.js';

// realpath: the temporary directory may itself sit behind a symlink (macOS /var -> /private/var)
const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'bbagent-confine-')));
const base = path.join(root, 'worker');
const build = path.join(base, 'builder', 'build');
const outside = path.join(root, 'outside');

/** BASEDIR with a build tree and symlinks (out of BASEDIR, inside it, a loop), and a directory outside it. */
function layOut(): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(path.join(build, 'sub'), { recursive: true });
  mkdirSync(path.join(base, 'spool'), { recursive: true });
  writeFileSync(path.join(build, 'file'), 'inside');
  mkdirSync(path.join(outside, 'victim'), { recursive: true });
  writeFileSync(path.join(outside, 'file'), 'outside');
  writeFileSync(path.join(outside, 'victim', 'keep'), 'keep');
  symlinkSync(outside, path.join(build, 'out'));
  symlinkSync(path.join(build, 'sub'), path.join(build, 'in'));
  symlinkSync('loop-b', path.join(build, 'loop-a'));
  symlinkSync('loop-a', path.join(build, 'loop-b'));
}

beforeEach(layOut);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('checkConfined', () => {
  it('passes paths that lead into BASEDIR, existing or not, through symlinks that stay inside', () => {
    for (const p of [
      base,
      `${base}/`,
      build,
      path.join(build, 'new', 'deeper'),
      `${build}/sub/../file`,
      path.join(build, 'in', 'x'),
      `${build}/new/../file`,
      '',
    ]) {
      expect(() => checkConfined(base, p), p).not.toThrow();
    }
  });

  it("refuses absolute paths outside, '..' escapes and symlinks that lead out, naming the path", () => {
    const cases: [string, RegExp][] = [
      [path.join(outside, 'file'), /it is outside the base directory/],
      ['/', /it is outside the base directory/],
      [`${build}/../../../outside/file`, /'\.\.' leads out of the base directory/],
      [`${base}/..`, /'\.\.' leads out of the base directory/],
      [path.join(build, 'out'), /a symlink in it leads out of the base directory, to .*outside/],
      [path.join(build, 'out', 'victim', 'new'), /a symlink in it leads out/],
      // the OS applies '..' after the symlink: by text this is build/file, in truth root/file
      [`${build}/out/../file`, /a symlink in it leads out of the base directory, to \S+\/file \(/],
      [path.join(build, 'loop-a', 'x'), /cannot be resolved to check where it leads \(ELOOP\)/],
    ];
    for (const [p, why] of cases) {
      let err: unknown;
      try {
        checkConfined(base, p);
      } catch (e) {
        err = e;
      }
      expect(err, p).toBeInstanceOf(ConfinementError);
      const e = err as ConfinementError;
      expect(e.code).toBe('E_CONFINED');
      expect(e.message).toContain(`refusing '${p}'`);
      expect(e.message).toMatch(why);
      expect(e.message).toContain(`the worker's base directory is ${base}`);
    }
  });

  it('follows a symlinked BASEDIR to where it really is', () => {
    const alias = path.join(root, 'alias');
    symlinkSync(base, alias);
    expect(() => checkConfined(alias, path.join(base, 'builder', 'x'))).not.toThrow();
    expect(() => checkConfined(alias, path.join(alias, 'builder', 'x'))).not.toThrow();
    expect(() => checkConfined(alias, path.join(outside, 'x'))).toThrow(ConfinementError);
  });

  it("resolveFollowingLinks applies '..' after the symlinks before it, as the OS does", () => {
    expect(resolveFollowingLinks(`${build}/out/..`)).toBe(root);
    expect(resolveFollowingLinks(`${build}/in/..`)).toBe(build);
    expect(resolveFollowingLinks(`${build}/nope/../file`)).toBe(path.join(build, 'file'));
    // nothing of it exists, not even the root: the whole path is text
    const none = (): string => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    expect(resolveFollowingLinks('/a/b/../c', { realpath: none, readLink: () => null })).toBe('/a/c');
  });

  it('a dangling symlink is followed to where it points, as open(O_CREAT) follows it', () => {
    // base/builder/dangling -> ../../outside/newfile: open() would create root/outside/newfile
    symlinkSync('../../outside/newfile', path.join(base, 'builder', 'dangling'));
    expect(resolveFollowingLinks(path.join(base, 'builder', 'dangling'))).toBe(path.join(outside, 'newfile'));
    let err: unknown;
    try {
      checkConfined(base, path.join(base, 'builder', 'dangling'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfinementError);
    expect((err as Error).message).toMatch(/a symlink in it leads out of the base directory, to \S+\/outside\/newfile \(/);
    // a chain of dangling links, one leading out at its end; and one that stays inside
    symlinkSync('dangling', path.join(base, 'builder', 'chain'));
    expect(() => checkConfined(base, path.join(base, 'builder', 'chain'))).toThrow(ConfinementError);
    symlinkSync('build/not-yet', path.join(base, 'builder', 'stays'));
    expect(resolveFollowingLinks(path.join(base, 'builder', 'stays'))).toBe(path.join(build, 'not-yet'));
    expect(() => checkConfined(base, path.join(base, 'builder', 'stays'))).not.toThrow();
  });

  it("a dangling link's '..' applies after the links in front of it (the kernel's order)", () => {
    // a/link -> ../x/y and x/y/dest -> ../z: open('a/link/dest') creates x/z, not a/z
    mkdirSync(path.join(build, 'a'));
    mkdirSync(path.join(build, 'x', 'y'), { recursive: true });
    symlinkSync('../x/y', path.join(build, 'a', 'link'));
    symlinkSync('../z', path.join(build, 'x', 'y', 'dest'));
    expect(resolveFollowingLinks(path.join(build, 'a', 'link', 'dest'))).toBe(path.join(build, 'x', 'z'));
  });

  it(`dangling links are followed at most ${MAX_LINK_HOPS} times, then ELOOP naming the path`, () => {
    // a fake OS where every name is a dangling link to the next one: the resolution must end
    let reads = 0;
    const endless = {
      realpath: (p: string): string => {
        if (p === '/') return p;
        throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      },
      readLink: (): string => `/l${++reads}`,
    };
    let err: unknown;
    try {
      resolveFollowingLinks('/l0', endless);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PyOSError);
    expect((err as PyOSError).code).toBe('ELOOP');
    expect((err as PyOSError).filename).toBe('/l0');
    expect(reads).toBe(MAX_LINK_HOPS + 1);
    expect(() => checkConfined('/', '/l0', endless)).toThrow(/cannot be resolved to check where it leads \(ELOOP\)/);
  });
});

describe('removalProtection (rmdir, confined or not)', () => {
  it("BASEDIR and its ancestors, by text or through a symlink, are refused; the agent's own directories are kept", () => {
    expect(removalProtection(base, base)?.kind).toBe('basedir');
    expect(removalProtection(base, `${base}/`)?.kind).toBe('basedir');
    expect(removalProtection(base, `${build}/../..`)?.kind).toBe('basedir');
    expect(removalProtection(base, root)?.why).toMatch(/an ancestor of the worker's base directory/);
    expect(removalProtection(base, '/')?.kind).toBe('basedir');
    symlinkSync(base, path.join(build, 'home'));
    expect(removalProtection(base, path.join(build, 'home'))?.kind).toBe('basedir');
    expect(removalProtection(base, path.join(base, 'spool'))).toMatchObject({ kind: 'agent', why: expect.stringContaining("is the agent's own directory") });
    expect(removalProtection(base, `${base}/info/`)?.kind).toBe('agent');
    expect(removalProtection(base, path.join(base, '.bbagent'))?.kind).toBe('agent');
    expect(removalProtection(base, `${build}/../../spool`)?.kind).toBe('agent');
    // what is inside them is not the agent's alone: a builder whose directory is 'spool' or 'info' keeps its rmdir
    expect(removalProtection(base, path.join(base, 'spool', 'build'))).toBeUndefined();
    expect(removalProtection(base, path.join(base, 'info', 'build'))).toBeUndefined();
    expect(removalProtection(base, path.join(base, '.bbagent', 'x'))).toBeUndefined();
    expect(removalProtection(base, build)).toBeUndefined();
    expect(removalProtection(base, path.join(base, 'spooler'))).toBeUndefined();
    expect(removalProtection(base, path.join(outside, 'victim'))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------
// Every command of the table, driven through the command host as a protocol drives it.

const writes: string[] = [];
const writer: RemoteWriter = {
  write: async (d) => void writes.push(`write ${d.length}`),
  close: async () => void writes.push('close'),
  utime: async () => void writes.push('utime'),
  unpack: async () => void writes.push('unpack'),
};
const reader = (): RemoteReader => {
  let sent = false;
  return {
    read: async () => {
      if (sent) return null;
      sent = true;
      return Buffer.from('downloaded');
    },
    close: async () => {},
  };
};

function env(confine: boolean): CommandEnv {
  const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: base, LANG: 'C.UTF-8' };
  return { basedir: base, platform: currentPlatform(), logger: silentLogger, environ, now: () => Date.now() / 1000, confineToBasedir: confine };
}

/** Runs one command; the error is what the master would see (a refused start, or the failure in `complete`). */
async function attempt(name: string, args: CommandArgs, confine = true): Promise<{ error: string | undefined; ch: RecordingChannel }> {
  const host = new CommandHost(COMMAND_TABLE, env(confine));
  const ch = new RecordingChannel();
  ch.uploadWriter = writer;
  ch.reader = reader();
  try {
    await host.start({ name, id: '1', args: { logEnviron: false, ...args }, channel: ch, settings: defaultOutputSettings() });
  } catch (err) {
    return { error: (err as Error).message, ch };
  }
  return { error: ch.failure?.message, ch };
}

/**
 * Each command with `p` in each of its path arguments, written as a master writes it (no normalising, so
 * '..' stays in), and the path the refusal must name.
 */
function commandsFor(p: string): [string, CommandArgs, string][] {
  const t = { blocksize: 16384, maxsize: null };
  const logfile = `${path.relative(build, p)}/file`;
  return [
    ['mkdir', { paths: [`${p}/made`] }, `${p}/made`],
    ['rmdir', { paths: [`${p}/victim`] }, `${p}/victim`],
    ['cpdir', { from_path: build, to_path: `${p}/copy` }, `${p}/copy`],
    ['cpdir', { from_path: p, to_path: path.join(build, 'copy') }, p],
    ['stat', { path: `${p}/file` }, `${p}/file`],
    ['glob', { path: `${p}/*` }, `${p}/*`],
    ['listdir', { path: p }, p],
    ['rmfile', { path: `${p}/file` }, `${p}/file`],
    ['upload_file', { path: `${p}/file`, keepstamp: false, ...t }, `${p}/file`],
    ['upload_directory', { path: `${p}/victim`, compress: null, ...t }, `${p}/victim`],
    ['download_file', { path: `${p}/downloaded`, mode: null, ...t }, `${p}/downloaded`],
    ['shell', { workdir: p, command: ['touch', 'ran-here'] }, p],
    // RunProcess opens a logfile at path.join(workdir, name)
    ['shell', { workdir: build, command: ['true'], logfiles: { leak: logfile } }, path.join(build, logfile)],
  ];
}

describe('a confined worker', () => {
  const escapes: [string, () => string][] = [
    ['an absolute path', () => outside],
    ["a '..' escape", () => `${build}/../../../outside`],
    ['a symlink out', () => path.join(build, 'out')],
  ];
  for (const [what, pathOf] of escapes) {
    it(`refuses ${what} in every file, transfer and shell command, touching nothing outside`, async () => {
      const p = pathOf();
      const before = snapshot(outside);
      writes.length = 0;
      for (const [name, args, named] of commandsFor(p)) {
        const { error } = await attempt(name, args);
        expect(error, `${name} ${JSON.stringify(args)}`).toMatch(/^confineToBasedir: refusing '.*'/);
        expect(error).toContain(`refusing '${named}'`);
      }
      expect(snapshot(outside)).toEqual(before);
      expect(writes).toEqual([]); // nothing was uploaded
    });
  }

  it('refuses download_file through a dangling symlink that leads out, creating nothing there', async () => {
    symlinkSync('../../outside/newfile', path.join(base, 'builder', 'dangling'));
    const { error } = await attempt('download_file', { path: path.join(base, 'builder', 'dangling'), mode: null, blocksize: 16, maxsize: null });
    expect(error).toMatch(/^confineToBasedir: refusing '.*\/dangling': a symlink in it leads out of the base directory/);
    expect(existsSync(path.join(outside, 'newfile'))).toBe(false);
  });

  it('still runs every command on paths inside BASEDIR', async () => {
    for (const [name, args] of commandsFor(path.join(build, 'sub'))) {
      if (name === 'rmdir' || name === 'upload_directory') mkdirSync(path.join(build, 'sub', 'victim'), { recursive: true });
      if (name === 'rmfile' || name === 'upload_file') writeFileSync(path.join(build, 'sub', 'file'), 'x');
      const { error } = await attempt(name, args);
      expect(error, `${name} ${JSON.stringify(args)}`).toBeUndefined();
    }
    expect(readFileSync(path.join(build, 'sub', 'downloaded'), 'utf8')).toBe('downloaded');
    expect(existsSync(path.join(build, 'sub', 'ran-here'))).toBe(true);
  });
});

describe('an unconfined worker', () => {
  it('goes where the master says, as buildbot-worker does', async () => {
    expect((await attempt('mkdir', { paths: [path.join(outside, 'made')] }, false)).error).toBeUndefined();
    expect(statSync(path.join(outside, 'made')).isDirectory()).toBe(true);
    expect((await attempt('download_file', { path: path.join(build, 'out', 'dl'), mode: null, blocksize: 16, maxsize: null }, false)).error).toBeUndefined();
    expect(readFileSync(path.join(outside, 'dl'), 'utf8')).toBe('downloaded');
  });

  it('download_file writes where open() would: through a dangling link, applying its .. after the links before it', async () => {
    // a/link -> ../x/y and x/y/dest -> ../z: Python's open('a/link/dest', 'wb') creates x/z
    mkdirSync(path.join(build, 'a'));
    mkdirSync(path.join(build, 'x', 'y'), { recursive: true });
    symlinkSync('../x/y', path.join(build, 'a', 'link'));
    symlinkSync('../z', path.join(build, 'x', 'y', 'dest'));
    const { error } = await attempt('download_file', { path: path.join(build, 'a', 'link', 'dest'), mode: null, blocksize: 16, maxsize: null }, false);
    expect(error).toBeUndefined();
    expect(readFileSync(path.join(build, 'x', 'z'), 'utf8')).toBe('downloaded');
    expect(existsSync(path.join(build, 'a', 'z'))).toBe(false);
    expect(lstatSync(path.join(build, 'x', 'y', 'dest')).isSymbolicLink()).toBe(true);
  });
});

describe('builder directories (PB setBuilderList)', () => {
  it('a confined worker creates none outside BASEDIR, and refuses commands on such a builder', async () => {
    const logger = new RecordingLogger();
    const worker = new Worker({ env: { ...env(true), logger }, commands: COMMAND_TABLE, collectInfo: async () => ({}), logger, onShutdownRequest: () => {} });
    expect(
      worker.setBuilderList([
        ['inside', 'b1'],
        ['escape', '../escaped'],
      ]),
    ).toEqual(['inside', 'escape']);
    expect(statSync(path.join(base, 'b1')).isDirectory()).toBe(true);
    expect(existsSync(path.join(root, 'escaped'))).toBe(false);
    expect(logger.lines.join('\n')).toMatch(/warn builder escape: not creating its directory: confineToBasedir: refusing '.*\/escaped'/);
    const ch = new RecordingChannel();
    expect(() => worker.startCommand('mkdir', '1', { dir: 'x' }, ch, { builder: 'escape' })).toThrow(/confineToBasedir: refusing '.*\/escaped\/x'/);
    expect(existsSync(path.join(root, 'escaped'))).toBe(false);
  });
});

describe("a builder whose directory is one of the agent's own", () => {
  for (const builddir of ['spool', 'info', '.bbagent']) {
    it(`'${builddir}': a warning names the sharing, and RemoveDirectory('build') removes the build tree`, async () => {
      const logger = new RecordingLogger();
      const worker = new Worker({
        env: { ...env(false), logger },
        commands: COMMAND_TABLE,
        collectInfo: async () => ({}),
        logger,
        onShutdownRequest: () => {},
      });
      mkdirSync(path.join(base, builddir, 'build', 'deep'), { recursive: true });
      writeFileSync(path.join(base, builddir, 'build', 'deep', 'f'), 'x');
      writeFileSync(path.join(base, builddir, 'agent-file'), 'kept');
      expect(worker.setBuilderList([[builddir, builddir]])).toEqual([builddir]);
      expect(logger.lines.join('\n')).toContain(
        `warn builder ${builddir}: its directory '${builddir}' is ${path.join(base, builddir)}, the agent's own directory, which the builder then shares`,
      );
      const ch = new RecordingChannel();
      await worker.startCommand('rmdir', '1', { dir: 'build', logEnviron: false }, ch, { builder: builddir });
      await ch.completed;
      expect(ch.failure).toBeNull();
      expect(ch.status('rc')).toEqual([0]);
      expect(ch.text('header')).not.toContain('not removing');
      expect(existsSync(path.join(base, builddir, 'build'))).toBe(false);
      expect(readFileSync(path.join(base, builddir, 'agent-file'), 'utf8')).toBe('kept');
      // the builder's whole directory is the agent's: kept, with a header line
      const whole = new RecordingChannel();
      await worker.startCommand('rmdir', '2', { dir: '.', logEnviron: false }, whole, { builder: builddir });
      await whole.completed;
      expect(whole.text('header')).toContain(`is the agent's own directory\n`);
      expect(existsSync(path.join(base, builddir, 'agent-file'))).toBe(true);
    });
  }

  it('a builder directory elsewhere gets no warning', () => {
    const logger = new RecordingLogger();
    const worker = new Worker({ env: { ...env(false), logger }, commands: COMMAND_TABLE, collectInfo: async () => ({}), logger, onShutdownRequest: () => {} });
    worker.setBuilderList([
      ['a', 'spooler'],
      ['b', 'x/spool'],
    ]);
    expect(logger.lines.join('\n')).not.toContain("the agent's own directory");
  });
});

describe('rmdir never removes BASEDIR', () => {
  for (const confine of [false, true]) {
    it(`an empty path removes nothing (${confine ? 'confined' : 'unconfined'})`, async () => {
      const before = snapshot(base);
      const { error, ch } = await attempt('rmdir', { paths: [''] }, confine);
      expect(error).toBeUndefined();
      expect(ch.status('rc')).toEqual([0]);
      expect(ch.text('header')).toContain('rmdir: skipping an empty path: it names nothing\n');
      expect(snapshot(base)).toEqual(before);
    });

    it(`BASEDIR, BASEDIR/ and an ancestor are refused before anything is removed (${confine ? 'confined' : 'unconfined'})`, async () => {
      const before = snapshot(root);
      for (const p of [base, `${base}/`, `${build}/../..`, root]) {
        const { error } = await attempt('rmdir', { paths: [path.join(build, 'sub'), p] }, confine);
        // confined, a path above BASEDIR is already refused as outside it
        if (confine && p === root) expect(error).toMatch(/^confineToBasedir: refusing '.*': it is outside the base directory/);
        else
          expect(error).toMatch(
            new RegExp(`^rmdir: refusing to remove '${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': it is (the|an ancestor of the) worker's base directory`),
          );
      }
      expect(snapshot(root)).toEqual(before);
    });
  }

  it("keeps the agent's own directories and removes the rest", async () => {
    const { error, ch } = await attempt('rmdir', { paths: [path.join(base, 'spool'), path.join(build, 'sub')] }, false);
    expect(error).toBeUndefined();
    expect(ch.text('header')).toContain(`rmdir: not removing '${path.join(base, 'spool')}': ${path.join(base, 'spool')} is the agent's own directory\n`);
    expect(existsSync(path.join(base, 'spool'))).toBe(true);
    expect(existsSync(path.join(build, 'sub'))).toBe(false);
    expect(ch.status('rc')).toEqual([0]);
  });
});

describe('cleartext warning', () => {
  it('knows loopback hosts', () => {
    for (const h of ['localhost', 'LOCALHOST', 'ci.localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of ['buildmaster.example.org', '10.0.0.5', '192.168.1.1', '::ffff:10.0.0.1', 'fe80::1', '128.0.0.1', 'localhost.example.org']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });

  it('warns for a network master without TLS, says what to do, and stays quiet otherwise', () => {
    const line = cleartextWarning({ host: '10.0.0.5', port: 9989, tls: false });
    expect(line).toMatch(/^the master 10\.0\.0\.5:9989 is reached without TLS: .* whoever answers at that address can run commands here\. Use TLS \(--use-tls/);
    expect(line).not.toContain('\n');
    expect(cleartextWarning({ host: '10.0.0.5', port: 9989, tls: true })).toBeUndefined();
    expect(cleartextWarning({ host: '127.0.0.1', port: 9989, tls: false })).toBeUndefined();
  });
});
