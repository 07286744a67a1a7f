// Proxy selection for fetch (agent/artifacts/proxy.ts): the environment's names and precedence, NO_PROXY's rules
// as curl has them (plus host:port), and real downloads through an in-test forward proxy on loopback
// (test/helpers/http-proxy.ts): absolute-URI form for http, a CONNECT tunnel for https (to an in-test https
// origin with a throwaway certificate), NO_PROXY honoured, Proxy-Authorization, a stuck proxy (connect timeout)
// and a proxy that cuts a body midway (resumed through it).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, type DownloadOptions } from '../../agent/artifacts/download.js';
import { bypassesProxy, parseProxy, proxyFor } from '../../agent/artifacts/proxy.js';
import { AgentError } from '../../agent/errors.js';
import { HttpOrigin, sha256, type TlsIdentity } from '../helpers/http-origin.js';
import { HttpProxy } from '../helpers/http-proxy.js';
import { silentLogger } from '../../agent/log.js';

describe('NO_PROXY rules', () => {
  const by = (url: string, list: string): boolean => bypassesProxy(new URL(url), list);

  it('matches a host, its subdomains (with or without a leading dot), case-insensitively; not look-alikes', () => {
    expect(by('http://example.com/x', 'example.com')).toBe(true);
    expect(by('http://a.b.Example.COM/x', 'example.com')).toBe(true);
    expect(by('http://a.example.com/x', '.example.com')).toBe(true);
    expect(by('http://example.com./x', '.example.com')).toBe(true);
    expect(by('http://badexample.com/x', 'example.com')).toBe(false);
    expect(by('http://example.com.evil/x', 'example.com')).toBe(false);
    expect(by('http://other.org/x', 'example.com, .internal  other.net')).toBe(false);
    expect(by('http://x.internal/x', 'example.com, .internal  other.net')).toBe(true);
  });

  it('`*` alone matches everything; empty entries match nothing', () => {
    expect(by('https://anything.example/x', '*')).toBe(true);
    expect(by('https://anything.example/x', ' , ,')).toBe(false);
  });

  it('IP addresses match exactly, CIDR ranges by prefix, IPv6 in brackets or bare', () => {
    expect(by('http://127.0.0.1:8080/x', '127.0.0.1')).toBe(true);
    expect(by('http://127.0.0.10/x', '127.0.0.1')).toBe(false);
    expect(by('http://10.1.2.3/x', '10.0.0.0/8')).toBe(true);
    expect(by('http://11.1.2.3/x', '10.0.0.0/8')).toBe(false);
    expect(by('http://[::1]:81/x', '::1')).toBe(true);
    expect(by('http://[fd00::5]/x', 'fd00::/8')).toBe(true);
    expect(by('http://[fe80::5]/x', 'fd00::/8')).toBe(false);
    expect(by('http://1.2.3.4/x', '1.2.3.0/33')).toBe(false);
  });

  it('host:port matches that port only (the URL’s default port counts)', () => {
    expect(by('http://example.com:8080/x', 'example.com:8080')).toBe(true);
    expect(by('http://example.com/x', 'example.com:8080')).toBe(false);
    expect(by('https://example.com/x', 'example.com:443')).toBe(true);
    expect(by('http://[::1]:8080/x', '[::1]:8080')).toBe(true);
    expect(by('http://[::1]:8081/x', '[::1]:8080')).toBe(false);
  });
});

describe('proxy settings from the environment', () => {
  const pick = (url: string, env: Record<string, string>): string | undefined => proxyFor(new URL(url), env)?.url.href;

  it('https_proxy for https, http_proxy for http, all_proxy as the fallback; lower case first; empty is unset', () => {
    const env = { HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2', HTTP_PROXY: 'plain:3', ALL_PROXY: 'http://all:4' };
    expect(pick('https://h/x', env)).toBe('http://lower:2/');
    expect(pick('http://h/x', env)).toBe('http://plain:3/');
    expect(pick('https://h/x', { ...env, https_proxy: '', HTTPS_PROXY: '' })).toBe('http://all:4/');
    expect(pick('https://h/x', {})).toBeUndefined();
    expect(pick('https://h/x', { ...env, no_proxy: 'h', NO_PROXY: 'other' })).toBeUndefined();
    expect(pick('https://h/x', { ...env, NO_PROXY: 'h' })).toBeUndefined();
  });

  it('credentials become Proxy-Authorization; only http:// proxies are accepted', () => {
    const p = parseProxy('http://us%40er:p%3Ass@proxy.local:3128');
    expect(p).toMatchObject({ host: 'proxy.local', port: 3128, authorization: `Basic ${Buffer.from('us@er:p:ss').toString('base64')}` });
    expect(parseProxy('proxy.local').port).toBe(80);
    expect(() => parseProxy('socks5://proxy.local:1080')).toThrow(/only http:\/\/ proxies/);
  });
});

describe('downloads through a proxy', () => {
  const content = randomBytes(2 * 1024 * 1024);
  let dir: string;
  let identity: TlsIdentity;
  let origin: HttpOrigin;
  let tlsOrigin: HttpOrigin;
  let proxy: HttpProxy;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-proxy-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert].concat([
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]),
      { stdio: 'ignore' },
    );
    identity = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
    origin = await HttpOrigin.start(content);
    tlsOrigin = await HttpOrigin.start(content, identity);
    proxy = await HttpProxy.start();
  });

  afterAll(async () => {
    await Promise.all([origin.close(), tlsOrigin.close(), proxy.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (over: Partial<DownloadOptions> & { url: string }) =>
    download({
      expected: { algorithm: 'sha256', digest: sha256(content) },
      dest: path.join(dir, 'out.bin'),
      logger: silentLogger,
      sleep: async () => undefined,
      ...over,
    });

  it('(g) http through HTTP_PROXY: the proxy gets the absolute URI and the credentials', async () => {
    const before = origin.log.length;
    const r = await run({ url: origin.url('/a.bin'), env: { HTTP_PROXY: proxy.url.replace('http://', 'http://bob:secret@') } });
    expect(readFileSync(r.path).equals(content)).toBe(true);
    expect(proxy.log.at(-1)).toEqual({ method: 'GET', target: origin.url('/a.bin'), authorization: `Basic ${Buffer.from('bob:secret').toString('base64')}` });
    expect(origin.log.length).toBe(before + 1);
    expect(origin.log.at(-1)!.headers['proxy-authorization']).toBeUndefined();
  });

  it('(g) https through https_proxy: a CONNECT tunnel, TLS to the origin inside it', async () => {
    const r = await run({ url: tlsOrigin.url('/b.bin'), env: { https_proxy: proxy.url }, ca: identity.cert });
    expect(readFileSync(r.path).equals(content)).toBe(true);
    expect(proxy.log.at(-1)).toEqual({ method: 'CONNECT', target: `127.0.0.1:${tlsOrigin.port}` });
    expect(tlsOrigin.log.at(-1)!.url).toBe('/b.bin');
  });

  it('(g) NO_PROXY sends a listed host direct (the proxy sees nothing)', async () => {
    const seen = proxy.log.length;
    await run({ url: origin.url('/c.bin'), env: { HTTP_PROXY: proxy.url, NO_PROXY: 'example.com,127.0.0.1' } });
    await run({ url: tlsOrigin.url('/c.bin'), env: { HTTPS_PROXY: proxy.url, no_proxy: `127.0.0.0/8` }, ca: identity.cert });
    expect(proxy.log.length).toBe(seen);
    expect(origin.log.at(-1)!.url).toBe('/c.bin');
  });

  it('an untrusted certificate fails at once, naming the URL (no retry)', async () => {
    const seen = tlsOrigin.log.length;
    const err = await run({ url: tlsOrigin.url('/d.bin') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toMatch(new RegExp(`^${tlsOrigin.url('/d.bin')}: .*self[- ]signed`));
    expect(tlsOrigin.log.length).toBe(seen);
    expect(readdirSync(dir).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('a proxy that never answers CONNECT: connect timeout, retried, then a clear failure', async () => {
    proxy.silent = true;
    try {
      const err = await run({ url: tlsOrigin.url('/e.bin'), env: { HTTPS_PROXY: proxy.url }, connectTimeoutMs: 200, maxAttempts: 2 }).catch((e: unknown) => e);
      expect((err as AgentError).code).toBe('E_FETCH_TIMEOUT');
      expect((err as AgentError).message).toBe(
        `${tlsOrigin.url('/e.bin')}: no connection to proxy 127.0.0.1:${proxy.port} within 0.2 s (gave up after 2 attempts)`,
      );
    } finally {
      proxy.silent = false;
    }
  });

  it('a body cut by the proxy midway is resumed through the proxy', async () => {
    const start = origin.log.length;
    proxy.cuts.push(1024 * 1024 + 100);
    const r = await run({ url: origin.url('/f.bin'), env: { http_proxy: proxy.url } });
    expect(readFileSync(r.path).equals(content)).toBe(true);
    const mine = origin.log.slice(start);
    expect(mine.map((l) => l.status)).toEqual([200, 206]);
    expect(mine[1]!.headers.range).toBe(`bytes=${r.resumedBytes}-`);
    expect(r.resumedBytes).toBeGreaterThan(0);
    expect(r.receivedBytes).toBe(content.length);
  });
});
