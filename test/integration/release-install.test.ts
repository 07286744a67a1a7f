// The release directory and install.sh against a real HTTP server (nginx on loopback): make-release assembles a
// linux-x64 release (the single executable from dist/ when built, else a stand-in that runs the bundle: building
// one takes ~20 s), install.sh installs it with curl + sha256sum, and with wget + shasum, and then runs
// create-worker; a tampered executable is refused and removed, nothing installed; an unreachable or wrong base
// URL fails with a message that names it. The release's npm package installs with `npm install -g URL` with no
// compiler on PATH (node-pty comes prebuilt), and that install runs a PTY step for a real Buildbot master.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/harness/bbagent-worker.js';
import { Nginx, findNginx } from '../../scripts/harness/nginx.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';
import { freePort } from '../../scripts/harness/ports.js';
import { ManagedProcess, findExecutable, runCommand } from '../../scripts/harness/process.js';
import { sha256File } from '../../scripts/release/tools.js';

const haveNginx = findNginx() !== undefined; // scripts/test installs it (scripts/ensure-nginx)
const BUILT = path.join(REPO_ROOT, 'dist', 'bbagent-linux-x64');
const BUNDLE = path.join(REPO_ROOT, 'build', 'bbagent.cjs');
const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Result {
  code: number | null;
  out: string;
}

/** Runs a shell command line to completion, with its stdout and stderr together. */
function sh(script: string, env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

/** A directory of links to the programs install.sh may use, leaving out `without` (to force the other tool). */
function toolDir(dir: string, without: string[]): string {
  mkdirSync(dir);
  const tools = ['sh', 'uname', 'awk', 'cut', 'mktemp', 'rm', 'cp', 'mv', 'chmod', 'chown', 'mkdir', 'id', 'cat', 'sysctl', 'tty', 'env', 'ln', 'stty'];
  for (const t of [...tools, 'curl', 'wget', 'sha256sum', 'shasum', 'node', 'perl']) {
    const found = findExecutable(t);
    if (found !== undefined && !without.includes(t)) symlinkSync(found, path.join(dir, t));
  }
  return dir;
}

describe.skipIf(!haveNginx)('release directory + install.sh over nginx', () => {
  let tmp: string;
  let nginx: Nginx;
  let exeSha: string;
  let env: NodeJS.ProcessEnv;
  const www = (): string => path.join(tmp, 'www');

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-release-'));
    mkdirSync(path.join(tmp, 'www'));
    nginx = await Nginx.start({ root: path.join(tmp, 'www') });
    let dist = path.join(REPO_ROOT, 'dist');
    if (!existsSync(BUILT)) {
      // No single executable built: a stand-in with the same name that runs the bundle on this Node.
      if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run node scripts/build.mjs`);
      dist = path.join(tmp, 'dist');
      mkdirSync(dist);
      writeFileSync(path.join(dist, 'bbagent-linux-x64'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BUNDLE)} "$@"\n`, {
        mode: 0o755,
      });
    }
    // The real entry point, baking the served URL into install.sh as its default.
    const release = path.join(www(), 'release');
    const args = ['--no-build', '--target', 'linux-x64', '--out', release, '--base-url', nginx.url('/release/'), '--dist', dist];
    await runCommand(path.join(REPO_ROOT, 'scripts', 'release', 'make-release'), args, { cwd: REPO_ROOT });
    exeSha = sha256File(path.join(release, 'bbagent-linux-x64'));
    // The same release with another executable under the listed name: what a tampered mirror would serve.
    const tampered = path.join(www(), 'tampered');
    mkdirSync(tampered);
    for (const f of ['SHA256SUMS', 'install.sh']) writeFileSync(path.join(tampered, f), readFileSync(path.join(release, f)));
    writeFileSync(path.join(tampered, 'bbagent-linux-x64'), `#!/bin/sh\ntouch ${JSON.stringify(path.join(tmp, 'tampered-ran'))}\n`, { mode: 0o755 });
    mkdirSync(path.join(tmp, 'scratch'));
    env = { PATH: process.env['PATH'], HOME: tmp, TMPDIR: path.join(tmp, 'scratch') };
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('make-release wrote the executable, both install scripts and a SHA256SUMS that sha256sum -c accepts', async () => {
    const release = path.join(www(), 'release');
    expect(readdirSync(release).sort()).toEqual(['SHA256SUMS', `bbagent-${VERSION}.tgz`, 'bbagent-linux-x64', 'install.ps1', 'install.sh']);
    const checked = await runCommand('sha256sum', ['-c', 'SHA256SUMS'], { cwd: release });
    expect(checked.split('\n').filter((l) => l.endsWith(': OK'))).toHaveLength(4);
    expect(readFileSync(path.join(release, 'install.sh'), 'utf8')).toContain(`BASE_URL='${nginx.url('/release')}'`);
    expect(readFileSync(path.join(release, 'install.ps1'), 'utf8')).toContain(`[string]$BaseUrl = '${nginx.url('/release')}'`);
  });

  it('curl | sh installs the executable (default base URL), verified, and runs create-worker from the same line', async () => {
    const prefix = path.join(tmp, 'p1', 'bin');
    const basedir = path.join(tmp, 'w1');
    const r = await sh(`curl -fsSL ${nginx.url('/release/install.sh')} | sh -s -- --prefix '${prefix}' --basedir '${basedir}' -- 127.0.0.1:9989 w1 pw`, env);
    expect(r.out).toContain(`installed ${prefix}/bbagent`);
    expect(r.code, r.out).toBe(0);
    const exe = path.join(prefix, 'bbagent');
    expect(sha256File(exe)).toBe(exeSha);
    expect(statSync(exe).mode & 0o777).toBe(0o755);
    expect(readdirSync(prefix)).toEqual(['bbagent']); // no temporary file left beside it
    expect((await runCommand(exe, ['--version'])).trim()).toContain(VERSION);
    const config = JSON.parse(readFileSync(path.join(basedir, 'bbagent.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ masterHost: '127.0.0.1', masterPort: 9989, name: 'w1', password: 'pw' });
    const got = nginx.accessLog().filter((e) => e.uri === '/release/bbagent-linux-x64' || e.uri === '/release/SHA256SUMS');
    expect(got.map((e) => `${e.uri} ${e.status}`)).toEqual(['/release/SHA256SUMS 200', '/release/bbagent-linux-x64 200']);
    expect(readdirSync(path.join(tmp, 'scratch'))).toEqual([]);
  });

  it('with wget (when installed) and shasum, no curl and no sha256sum, it installs the same file', async () => {
    // wget is not on every machine: without it the curl path runs again, still with shasum (perl) for the check
    const haveWget = findExecutable('wget') !== undefined;
    if (findExecutable('shasum') === undefined) throw new Error('shasum (Debian: perl) is needed');
    const bin = toolDir(path.join(tmp, 'tools-wget'), haveWget ? ['curl', 'sha256sum'] : ['sha256sum']);
    const prefix = path.join(tmp, 'p2');
    const r = await sh(`sh '${path.join(www(), 'release', 'install.sh')}' --prefix '${prefix}'`, { ...env, PATH: bin });
    expect(r.code, r.out).toBe(0);
    expect(sha256File(path.join(prefix, 'bbagent'))).toBe(exeSha);
  });

  it('refuses a tampered executable: says checksum mismatch, removes the download, installs nothing', async () => {
    const prefix = path.join(tmp, 'p3');
    const r = await sh(`sh '${path.join(www(), 'tampered', 'install.sh')}' --base-url ${nginx.url('/tampered')} --prefix '${prefix}'`, env);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /checksum mismatch for bbagent-linux-x64: SHA256SUMS says [0-9a-f]{64}, the download is [0-9a-f]{64}\. The download was removed and nothing was installed\./,
    );
    expect(r.out).toContain(exeSha);
    expect(existsSync(prefix)).toBe(false);
    expect(existsSync(path.join(tmp, 'tampered-ran'))).toBe(false); // never executed
    expect(readdirSync(path.join(tmp, 'scratch'))).toEqual([]); // temp directory and download gone
  });

  it('an unreachable base URL, a wrong path and a missing one each fail with a message that names the problem', async () => {
    const port = await freePort(); // nothing listens there
    const prefix = path.join(tmp, 'p4');
    const script = path.join(www(), 'release', 'install.sh');
    const down = await sh(`sh '${script}' --base-url http://127.0.0.1:${port}/rel --prefix '${prefix}'`, env);
    expect(down.code).toBe(1);
    expect(down.out).toContain(`install.sh: cannot download http://127.0.0.1:${port}/rel/SHA256SUMS: is --base-url right and the server reachable?`);
    const wrong = await sh(`sh '${script}' --base-url ${nginx.url('/nope')} --prefix '${prefix}'`, env);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain(`cannot download ${nginx.url('/nope/SHA256SUMS')}`);
    expect(wrong.out).toMatch(/404/); // curl's own line says why
    const bad = await sh(`sh '${script}' --base-url ftp://example --prefix '${prefix}'`, env);
    expect(bad.out).toContain("--base-url 'ftp://example': expected an http:// or https:// URL");
    const noWorker = await sh(`sh '${script}' --prefix '${prefix}' -- host:1 w pw`, env);
    expect(noWorker.out).toContain('-- (create-worker) and --service need --basedir DIR');
    expect(existsSync(prefix)).toBe(false);
  });

  it('npm install -g of the release tarball needs no compiler, and that install runs a PTY step for a real master', async () => {
    const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    const bin = toolDir(path.join(tmp, 'tools-npm'), ['curl', 'wget', 'perl']);
    const noCompiler = await sh('for c in gcc g++ cc c++ make python3 node-gyp; do command -v $c && exit 1; done; exit 0', { PATH: bin });
    expect(noCompiler.code, `a compiler is on the test PATH: ${noCompiler.out}`).toBe(0);
    const prefix = path.join(tmp, 'npm-prefix');
    const npmEnv = { PATH: bin, HOME: process.env['HOME'] ?? tmp, npm_config_update_notifier: 'false' };
    // From the URL of the release directory; the registry packages come from npm's cache when it has them.
    const url = nginx.url(`/release/bbagent-${VERSION}.tgz`);
    const installed = await sh(`node '${npmCli}' install -g --prefix '${prefix}' --prefer-offline --no-audit --no-fund '${url}'`, npmEnv);
    expect(installed.code, installed.out).toBe(0);
    expect(installed.out).not.toMatch(/install scripts|gyp|prebuild/i);
    expect(nginx.accessLog().some((e) => e.uri === `/release/bbagent-${VERSION}.tgz` && e.status === 200)).toBe(true);
    const exe = path.join(prefix, 'bin', 'bbagent');
    expect((await runCommand(exe, ['--version'], { env: npmEnv })).trim()).toBe(`bbagent ${VERSION}`);
    const modules = path.join(prefix, 'lib', 'node_modules', 'bbagent', 'node_modules');
    expect(readdirSync(path.join(modules, '@lydell')).sort()).toEqual(['node-pty', 'node-pty-linux-x64']);
    expect(existsSync(path.join(modules, 'node-pty'))).toBe(false); // nothing compiled

    const master = await BuildbotMaster.start({
      dir: path.join(tmp, 'master'),
      protocol: 'msgpack',
      workers: [{ name: 'npm', password: 'pw' }],
      builders: [{ name: 'pty', workernames: ['npm'], steps: "[steps.ShellCommand(name='pty', command='tty; echo pty-ok', usePTY=True, logEnviron=False)]" }],
    });
    let worker: ManagedProcess | undefined;
    try {
      const basedir = path.join(tmp, 'npm-worker');
      await runCommand(exe, ['create-worker', '--quiet', '--protocol=msgpack', '--maxdelay=2', basedir, `127.0.0.1:${master.protocolPort}`, 'npm', 'pw'], {
        env: npmEnv,
      });
      worker = await ManagedProcess.spawn({ command: exe, args: ['start', '--nodaemon', basedir], cwd: basedir, env: npmEnv, label: 'bbagent (npm install)' });
      await master.waitForWorker('npm', true, 30_000);
      const build = await master.runBuild('pty', 30_000);
      expect(build.results, worker.capturedOutput).toBe(Results.SUCCESS);
      expect(channelText(findLog(findStep(build, 'pty')), 'o')).toMatch(/^\/dev\/pts\/\d+\r?\npty-ok\r?\n$/);
    } finally {
      await worker?.stop();
      await master.stop();
    }
  });

  it('--service runs `bbagent service install` with --user and --service-args (dry run here: no systemd)', async () => {
    const prefix = path.join(tmp, 'p5');
    const basedir = path.join(tmp, 'w5');
    const script = path.join(www(), 'release', 'install.sh');
    const r = await sh(
      `sh '${script}' --prefix '${prefix}' --basedir '${basedir}' --user nobody --service --service-args '--dry-run --name release-test' -- 127.0.0.1:9989 w5 pw`,
      env,
    );
    expect(r.code, r.out).toBe(0);
    expect(statSync(basedir).uid).not.toBe(0); // given to --user
    expect(r.out).toMatch(/bbagent-release-test\.service|release-test/);
    expect(r.out).toContain(`ExecStart=${prefix}/bbagent start --nodaemon`);
  });
});

// No run of install.ps1 here: PowerShell is neither in Debian nor on npm (the npm "pwsh" package downloads it at
// install time). test/unit/release-scripts.test.ts checks that script's structure instead.
