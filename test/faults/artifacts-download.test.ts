// agent/artifacts/download.ts against a real nginx from Debian (scripts/harness/nginx.ts) serving files with
// Range, If-Range and strong ETags, with the in-test forward proxy (test/helpers/http-proxy.ts) in between to cut
// a body midway. Proven from nginx's own access log: the resume is one 206 for exactly the missing bytes, and a
// file replaced between the drop and the resume makes nginx answer the If-Range with a 200 (a restart from 0).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, type DownloadOptions } from '../../agent/artifacts/download.js';
import { AgentError } from '../../agent/errors.js';
import { Nginx, findNginx } from '../../scripts/harness/nginx.js';
import { sha256 } from '../helpers/http-origin.js';
import { HttpProxy } from '../helpers/http-proxy.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const MiB = 1024 * 1024;
const haveNginx = findNginx() !== undefined; // scripts/test installs it (scripts/ensure-nginx)

describe.skipIf(!haveNginx)('download from nginx', () => {
  const content = randomBytes(8 * MiB);
  let scratch: string;
  let root: string;
  let out: string;
  let nginx: Nginx;
  let proxy: HttpProxy;

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-nginx-'));
    root = path.join(scratch, 'www');
    out = path.join(scratch, 'out');
    mkdirSync(root);
    mkdirSync(out);
    writeFileSync(path.join(root, 'build.bin'), content);
    nginx = await Nginx.start({ root });
    proxy = await HttpProxy.start();
  });

  afterAll(async () => {
    await Promise.all([nginx?.stop(), proxy?.close()]);
    rmSync(scratch, { recursive: true, force: true });
  });

  const run = (over: Partial<DownloadOptions> = {}) =>
    download({
      url: nginx.url('/build.bin'),
      expected: { algorithm: 'sha256', digest: sha256(content) },
      dest: path.join(out, 'build.bin'),
      logger: new RecordingLogger(),
      sleep: async () => undefined,
      ...over,
    });

  it('a plain fetch: one 200 in the access log, the whole file sent once', async () => {
    const before = nginx.accessLog().length;
    const r = await run();
    expect(readFileSync(r.path).equals(content)).toBe(true);
    expect(nginx.accessLog().slice(before)).toEqual([{ method: 'GET', uri: '/build.bin', status: 200, bytes: content.length, range: '', ifRange: '' }]);
  });

  it('a drop mid-body (the proxy cuts the link) resumes: nginx logs one 206 with If-Range for exactly the missing bytes', async () => {
    const before = nginx.accessLog().length;
    proxy.cuts.push(3 * MiB + 17);
    const r = await run({ env: { HTTP_PROXY: proxy.url } });
    expect(readFileSync(r.path).equals(content)).toBe(true);
    expect(r.attempts).toBe(2);
    expect(r.resumedBytes).toBeGreaterThanOrEqual(3 * MiB); // everything the client got before the cut was kept
    expect(r.receivedBytes).toBe(content.length);
    const log = nginx.accessLog().slice(before);
    expect(log.map((e) => e.status)).toEqual([200, 206]);
    const resumed = log[1]!;
    expect(resumed.range).toBe(`bytes=${r.resumedBytes}-`);
    expect(resumed.ifRange).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/); // nginx's strong ETag, sent back as the validator
    expect(resumed.bytes).toBe(content.length - r.resumedBytes); // nothing kept was sent again
    expect(readdirSync(out)).toEqual(['build.bin']);
  });

  it('the file replaced between the drop and the resume: nginx answers If-Range with 200, the download restarts from 0', async () => {
    const before = nginx.accessLog().length;
    const next = randomBytes(5 * MiB);
    proxy.cuts.push(2 * MiB);
    const replace = (): void => writeFileSync(path.join(root, 'build.bin'), next);
    try {
      const r = await run({
        env: { HTTP_PROXY: proxy.url },
        expected: { algorithm: 'sha256', digest: sha256(next) },
        onProgress: (p) => p.state === 'retrying' && replace(),
      });
      expect(readFileSync(r.path).equals(next)).toBe(true);
      expect(r.resumedBytes).toBe(0);
      const log = nginx.accessLog().slice(before);
      expect(log.map((e) => [e.status, e.range === '' ? '' : 'range'])).toEqual([
        [200, ''],
        [200, 'range'],
      ]);
      expect(log[1]!.bytes).toBe(next.length);
    } finally {
      writeFileSync(path.join(root, 'build.bin'), content);
    }
  });

  it('404 from nginx: one request, a message naming the URL and the status', async () => {
    const before = nginx.accessLog().length;
    const err = await run({ url: nginx.url('/missing.bin') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toBe(`${nginx.url('/missing.bin')}: HTTP 404 Not Found`);
    expect(
      nginx
        .accessLog()
        .slice(before)
        .map((e) => e.status),
    ).toEqual([404]);
  });
});
