// TLS on top of the proxy's tunnel (connection/proxy.ts): PB's TLS and msgpack's wss:// both verify the master's
// certificate (a self-signed CA given as `ca`) through an in-test CONNECT proxy, which sees only the tunnel.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { connectMsgpack } from '../../agent/connection/msgpack/connect.js';
import { connectPb } from '../../agent/connection/pb/connect.js';
import { Worker } from '../../agent/worker/worker.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { startConnectProxy, type TestProxy } from '../helpers/connect-proxy.js';

function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-proxy-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

describe('TLS through the CONNECT proxy', () => {
  let proxy: TestProxy;
  let creds: { key: Buffer; cert: Buffer };
  const via = (): { host: string; port: number; authorization: undefined } => ({ host: '127.0.0.1', port: proxy.port, authorization: undefined });

  beforeAll(async () => {
    proxy = await startConnectProxy();
    creds = selfSigned();
  });

  afterAll(async () => {
    await proxy.close();
  });

  it('PB: the TLS handshake with the master runs inside the tunnel and verifies its certificate', async () => {
    let secured = 0;
    const server = tls.createServer(creds, (s) => {
      secured++;
      s.destroy(); // a master that hangs up after the handshake: the login fails, the TLS did not
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-proxy-pb-'));
    const logger = new RecordingLogger();
    const worker = new Worker({
      env: { basedir, platform: currentPlatform(), logger, environ: {}, now: () => Date.now() / 1000 },
      commands: COMMAND_TABLE,
      collectInfo: async () => ({ basedir }),
      logger,
      onShutdownRequest: () => {},
    });
    const before = proxy.tunnels;
    const e = { host: '127.0.0.1', port, name: 'w', password: 'pw', keepaliveS: 0, handshakeTimeoutMs: 5000, proxy: via() };
    await expect(connectPb({ ...e, tls: { ca: creds.cert } }, worker, logger)).rejects.toMatchObject({ code: 'E_CONNECTION_LOST' });
    expect(secured).toBe(1);
    expect(proxy.tunnels).toBe(before + 1);
    // without the CA the certificate is refused, through the tunnel as directly
    await expect(connectPb({ ...e, tls: {} }, worker, logger)).rejects.toMatchObject({ code: 'E_CONNECT', message: expect.stringContaining('certificate') });
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('msgpack: wss:// through the tunnel, with the master checking the worker password', async () => {
    const server = https.createServer(creds);
    const wss = new WebSocketServer({ server });
    let auth: string | undefined;
    wss.on('connection', (_ws, req) => (auth = req.headers.authorization));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const before = proxy.tunnels;
    const ws = await connectMsgpack({
      host: '127.0.0.1',
      port,
      name: 'w',
      password: 'pw',
      tls: true,
      ca: [creds.cert],
      deflate: false,
      handshakeTimeoutMs: 5000,
      proxy: via(),
    });
    expect(auth).toBe(`Basic ${Buffer.from('w:pw').toString('base64')}`);
    expect(proxy.tunnels).toBe(before + 1);
    expect(proxy.requests.at(-1)?.target).toBe(`127.0.0.1:${port}`);
    ws.terminate();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  });
});
