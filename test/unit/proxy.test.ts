// The HTTP CONNECT tunnel (connection/proxy.ts) against an in-test proxy and a TCP server on loopback: the
// endpoint forms buildbot-worker takes, the bytes through the tunnel both ways (including those the proxy sends
// with its answer), and refusals that name the proxy and say what to do.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTunnel, parseProxyConnectionString, probeEndpoint } from '../../agent/connection/proxy.js';
import { AgentError } from '../../agent/errors.js';
import { startConnectProxy, type TestProxy } from '../helpers/connect-proxy.js';

describe('parseProxyConnectionString', () => {
  it("reads Twisted's tcp: forms and http:// URLs with credentials", () => {
    expect(parseProxyConnectionString('tcp:host=proxy.example:port=3128')).toEqual({ host: 'proxy.example', port: 3128, authorization: undefined });
    expect(parseProxyConnectionString('tcp:proxy.example:3128')).toEqual({ host: 'proxy.example', port: 3128, authorization: undefined });
    expect(parseProxyConnectionString('tcp:host=\\:\\:1:port=8080')).toEqual({ host: '::1', port: 8080, authorization: undefined });
    expect(parseProxyConnectionString('http://u%40x:p%3Aw@10.0.0.1:8080')).toEqual({
      host: '10.0.0.1',
      port: 8080,
      authorization: `Basic ${Buffer.from('u@x:p:w').toString('base64')}`,
    });
  });

  it('refuses what it cannot use, naming the field', () => {
    expect(() => parseProxyConnectionString('tls:host=p:port=1')).toThrow(/proxyConnectionString: a proxy reached over TLS is not supported/);
    expect(() => parseProxyConnectionString('https://p:1')).toThrow(/only http:\/\/ proxies/);
    expect(() => parseProxyConnectionString('tcp:host=p')).toThrow(/expected a port from 1 to 65535/);
    expect(() => parseProxyConnectionString('unix:/run/p.sock')).toThrow(/expected tcp:host=HOST:port=PORT or http:\/\/HOST:PORT/);
  });
});

describe('openTunnel through a CONNECT proxy', () => {
  let proxy: TestProxy;
  let server: net.Server;
  let port: number;

  beforeAll(async () => {
    proxy = await startConnectProxy();
    // a "master" that greets first (as PB's does) and echoes
    server = net.createServer((s) => {
      s.write('hello ');
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await proxy.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('carries bytes both ways, the master speaking first', async () => {
    proxy.refuseWith = undefined;
    const before = proxy.tunnels;
    const socket = await openTunnel({ host: '127.0.0.1', port: proxy.port, authorization: 'Basic dTpw' }, { host: '127.0.0.1', port, timeoutMs: 5000 });
    const got: Buffer[] = [];
    socket.on('data', (c: Buffer) => got.push(c));
    socket.resume();
    socket.write('world');
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (Buffer.concat(got).toString() === 'hello world') resolve();
      };
      socket.on('data', check);
      check();
    });
    socket.destroy();
    expect(proxy.tunnels).toBe(before + 1);
    expect(proxy.requests.at(-1)).toEqual({ target: `127.0.0.1:${port}`, authorization: 'Basic dTpw' });
  });

  it('a 407 names the proxy and asks for credentials; a 403 names the proxy and its rules', async () => {
    const target = { host: '127.0.0.1', port, timeoutMs: 5000 };
    const via = { host: '127.0.0.1', port: proxy.port, authorization: undefined };
    proxy.refuseWith = 407;
    const e407 = await openTunnel(via, target).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(e407).toBeInstanceOf(AgentError);
    expect((e407 as AgentError).code).toBe('E_PROXY');
    expect((e407 as AgentError).message).toBe(
      `HTTP proxy 127.0.0.1:${proxy.port}: refused the tunnel with HTTP 407 Proxy Authentication Required: the proxy wants credentials ` +
        `(give them as http://USER:PASSWORD@HOST:PORT) (tunnel to the master at 127.0.0.1:${port})`,
    );
    proxy.refuseWith = 403;
    await expect(openTunnel(via, target)).rejects.toThrow(
      new RegExp(`^HTTP proxy 127\\.0\\.0\\.1:${proxy.port}: refused the tunnel with HTTP 403 Forbidden: the proxy does not allow tunnels`),
    );
    proxy.refuseWith = undefined;
  });

  it('a proxy nobody answers at is named', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const dead = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(openTunnel({ host: '127.0.0.1', port: dead, authorization: undefined }, { host: '127.0.0.1', port, timeoutMs: 5000 })).rejects.toThrow(
      new RegExp(`^HTTP proxy 127\\.0\\.0\\.1:${dead}: cannot connect to the proxy: .*ECONNREFUSED`),
    );
  });

  it('probes a master through the proxy with a tunnel closed at once', async () => {
    const before = proxy.tunnels;
    await probeEndpoint({ host: '127.0.0.1', port }, { host: '127.0.0.1', port: proxy.port, authorization: undefined }, 5000);
    expect(proxy.tunnels).toBe(before + 1);
  });
});
