// FetchBuild (master/bbagent_buildbot/fetch.py) in real Buildbot 3.7 builds, over PB and msgpack: a build fetches a
// tar.gz from real nginx on loopback through bbagent's `fetch` remote command, extracts it into the build, and the
// next step reads the extracted file (by a relative path and by the step's `fetch_path` property); a second build,
// and a build on the agent's second worker, are cache hits that send no request (nginx's access log); a wrong sha256 fails the step with both hashes in its
// summary; a build stopped from the master while the body is arriving (an in-test origin that stalls) ends
// CANCELLED with no partial file left; on buildbot-worker, which has no `fetch`, the step fails saying so. (master-package.test.ts installs
// the package with pip.)

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker, MASTER_PACKAGE_ENV } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type Protocol } from '../../scripts/harness/master.js';
import { Nginx } from '../../scripts/harness/nginx.js';
import { pollUntil } from '../../scripts/harness/process.js';
import { HttpOrigin, sha256 as sha256Of } from '../helpers/http-origin.js';
import { ReferenceWorker } from '../../scripts/harness/reference-worker.js';

const PASSWORD = 'sekrit';

/** A build's archive: tests/run.txt and 300 KiB of random bytes, as the real `tar` packs it. */
function makeArchive(www: string, scratch: string): string {
  const tree = path.join(scratch, 'tree');
  mkdirSync(path.join(tree, 'tests'), { recursive: true });
  writeFileSync(path.join(tree, 'tests', 'run.txt'), 'the tests ran\n');
  writeFileSync(path.join(tree, 'payload.bin'), randomBytes(300 * 1024));
  execFileSync('tar', ['czf', path.join(www, 'build-1.tar.gz'), '-C', tree, '.']);
  return createHash('sha256')
    .update(readFileSync(path.join(www, 'build-1.tar.gz')))
    .digest('hex');
}

const protocols: Protocol[] = ['pb', 'msgpack'];

describe.each(protocols)('FetchBuild over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-fetchbuild-${protocol}-`));
  const www = path.join(scratch, 'www');
  let nginx: Nginx;
  let stalling: HttpOrigin;
  const stalled = randomBytes(1 << 20);
  let master: BuildbotMaster;
  let bb: BbagentWorker;
  let ref: ReferenceWorker;
  let sha: string;

  beforeAll(async () => {
    mkdirSync(www);
    sha = makeArchive(www, scratch);
    nginx = await Nginx.start({ root: www });
    stalling = await HttpOrigin.start(stalled);
    const fetch = (extra = ''): string =>
      `FetchBuild(name='fetch', url=util.Interpolate('${nginx.url('/')}%(kw:file)s', file='build-1.tar.gz'), ` +
      `sha256=util.Property('want_sha', default='${sha}'), extract='app'${extra})`;
    const read = `steps.ShellCommand(name='read', command=['cat', 'app/tests/run.txt', util.Interpolate('%(prop:fetch_path)s/tests/run.txt')], logEnviron=False)`;
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: [
        { name: 'bb', password: PASSWORD },
        { name: 'bb2', password: PASSWORD },
        { name: 'ref', password: PASSWORD },
      ],
      builders: [
        { name: 'fetch-bb', workernames: ['bb'], steps: `[${fetch()}, ${read}]` },
        {
          name: 'fetch-bad-bb',
          workernames: ['bb'],
          steps: `[${fetch(`, dest='x.tgz'`)
            .replace(`default='${sha}'`, `default='${'0'.repeat(64)}'`)
            .replace(", extract='app'", '')}]`,
        },
        { name: 'fetch-bb2', workernames: ['bb2'], steps: `[${fetch()}, ${read}]` },
        { name: 'fetch-link-bb', workernames: ['bb'], steps: `[${fetch(', link=True')}, ${read}]` },
        { name: 'fetch-ref', workernames: ['ref'], steps: `[${fetch()}, ${read}]` },
        {
          name: 'fetch-stall-bb',
          workernames: ['bb'],
          steps: `[FetchBuild(name='fetch', url='${stalling.url('/stall.bin')}', sha256='${sha256Of(stalled)}', dest='stalled.bin')]`,
        },
      ],
      pythonPreamble: 'from bbagent_buildbot.fetch import FetchBuild',
      env: MASTER_PACKAGE_ENV,
    });
    [bb, ref] = await Promise.all([
      // one agent, two workers side by side in its directory (bb in bb/w1, bb2 in bb/w2): one cache, in w1/cache
      BbagentWorker.start({
        dir: path.join(scratch, 'bb'),
        masterPort: master.protocolPort,
        name: 'bb',
        password: PASSWORD,
        protocol,
        config: { basedir: 'w1', workers: [{ basedir: 'w2', name: 'bb2' }] },
      }),
      ReferenceWorker.start({ dir: path.join(scratch, 'ref'), masterPort: master.protocolPort, name: 'ref', password: PASSWORD, protocol }),
    ]);
    await Promise.all([master.waitForWorker('bb'), master.waitForWorker('bb2'), master.waitForWorker('ref')]);
  });

  afterAll(async () => {
    await Promise.allSettled([bb?.stop(), ref?.stop()]);
    await master?.stop();
    await nginx?.stop();
    await stalling?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("fetches and extracts a build that the next step reads; the second build and one on the agent's other worker are cache hits with no request", async () => {
    const first = await master.runBuild('fetch-bb', 60_000);
    const step = findStep(first, 'fetch');
    expect(step.results, step.state_string).toBe(Results.SUCCESS);
    expect(step.state_string).toMatch(/^fetched 30\d\.\d KiB \(1 request\(s\)\)$/);
    expect(channelText(findLog(step), 'o')).toMatch(/attempt 1: HTTP 200, \d+ bytes, sha256 ok/);
    const extracted = path.join(bb.dir, 'w1', 'fetch-bb', 'build', 'app');
    expect(readFileSync(path.join(extracted, 'tests', 'run.txt'), 'utf8')).toBe('the tests ran\n');
    expect(channelText(findLog(findStep(first, 'read')), 'o')).toBe('the tests ran\nthe tests ran\n');
    expect(first.results).toBe(Results.SUCCESS);
    expect(nginx.accessLog()).toHaveLength(1);

    // the same builder directory: the extract directory is clobbered, the archive comes from the cache
    const second = await master.runBuild('fetch-bb', 60_000);
    expect(second.results).toBe(Results.SUCCESS);
    expect(findStep(second, 'fetch').state_string).toMatch(/^fetched 30\d\.\d KiB \(cached\)$/);
    // the archive's second use: no request; its tree is now cached
    expect(channelText(findLog(findStep(second, 'fetch')), 'o')).toContain('from the cache, no request');
    expect(channelText(findLog(findStep(second, 'read')), 'o')).toBe('the tests ran\nthe tests ran\n');
    expect(nginx.accessLog()).toHaveLength(1);

    // the agent's other worker shares the cache
    const other = await master.runBuild('fetch-bb2', 60_000);
    expect(other.results).toBe(Results.SUCCESS);
    expect(findStep(other, 'fetch').state_string).toMatch(/\(cached\)$/);
    // the third use copies the cached tree into the build: no request, no extraction
    expect(channelText(findLog(findStep(other, 'fetch')), 'o')).toContain('the cached tree copied, no request');
    expect(readFileSync(path.join(bb.dir, 'w2', 'fetch-bb2', 'build', 'app', 'tests', 'run.txt'), 'utf8')).toBe('the tests ran\n');
    expect(nginx.accessLog()).toHaveLength(1);
  });

  it('link=True makes the extract directory a symlink to the cached tree; the next build clobbers the link, not the tree', async () => {
    const before = nginx.accessLog().length;
    for (let run = 0; run < 2; run++) {
      const build = await master.runBuild('fetch-link-bb', 60_000);
      expect(build.results).toBe(Results.SUCCESS);
      expect(findStep(build, 'fetch').state_string).toMatch(/^fetched 30\d\.\d KiB \(cached, linked\)$/);
      expect(channelText(findLog(findStep(build, 'fetch')), 'o')).toContain('the cached tree linked, no request');
      expect(channelText(findLog(findStep(build, 'read')), 'o')).toBe('the tests ran\nthe tests ran\n');
      const app = path.join(bb.dir, 'w1', 'fetch-link-bb', 'build', 'app');
      expect(lstatSync(app).isSymbolicLink()).toBe(true);
      expect(readlinkSync(app).startsWith(path.join(bb.dir, 'w1', 'cache', 'sha256'))).toBe(true);
    }
    expect(readFileSync(path.join(bb.dir, 'w1', 'cache', 'sha256', sha.slice(0, 2), `${sha}.extracted`, 'tests', 'run.txt'), 'utf8')).toBe('the tests ran\n');
    expect(nginx.accessLog().length).toBe(before);
  });

  it('a wrong sha256 fails the step with both hashes in its summary', async () => {
    const build = await master.runBuild('fetch-bad-bb', 60_000);
    const step = findStep(build, 'fetch');
    expect(build.results).toBe(Results.FAILURE);
    expect(step.state_string).toContain(`fetch failed: ${nginx.url('/build-1.tar.gz')}`);
    expect(step.state_string).toContain('0'.repeat(64));
    expect(step.state_string).toContain(sha);
    expect(channelText(findLog(step), 'e')).toContain(sha);
  });

  it('a build stopped while the body arrives is cancelled and leaves no partial file', async () => {
    stalling.plan({ kind: 'stall', bytes: 64 * 1024 });
    const brid = await master.forceBuild('fetch-stall-bb');
    const buildid = await master.waitForBuildStarted(brid);
    const tmp = path.join(bb.dir, 'w1', 'cache', '.tmp');
    await pollUntil(() => (stalling.log.length === 1 && readdirSync(tmp).length > 0) || undefined, { timeoutMs: 30_000, what: 'the download under way' });
    await master.stopBuild(buildid, 'stopped by the test');
    const build = await master.waitForBuild(brid);
    expect(build.results).toBe(Results.CANCELLED);
    expect(channelText(findLog(findStep(build, 'fetch')), 'e')).toMatch(/stall\.bin: .*aborted.*\(interrupted\)/);
    expect(readdirSync(tmp)).toEqual([]);
    expect(existsSync(path.join(bb.dir, 'w1', 'fetch-stall-bb', 'build', 'stalled.bin'))).toBe(false);
  });

  it('fails clearly on buildbot-worker, which has no fetch command', async () => {
    const build = await master.runBuild('fetch-ref', 60_000);
    const step = findStep(build, 'fetch');
    expect(build.results).toBe(Results.FAILURE);
    expect(step.state_string).toBe("fetch: worker has no 'fetch' command (failure)");
    expect(readLog(step, 'error')).toMatch(/worker 'ref' does not advertise the 'fetch' command: it is not running bbagent/);
    expect(build.steps.map((s) => s.name)).toEqual(['worker_preparation', 'fetch']); // haltOnFailure: nothing ran after it
  });
});

function readLog(step: ReturnType<typeof findStep>, name: string): string {
  return channelText(findLog(step, name), 'e');
}
