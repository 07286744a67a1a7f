// An HTTP CONNECT proxy for tests, on 127.0.0.1 port 0: it counts the tunnels it opened and the CONNECT requests
// it saw, and answers with a refusal (407, 403) when told to.

import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TestProxy {
  port: number;
  /** Tunnels opened (answered 200). */
  readonly tunnels: number;
  /** Each CONNECT's target and Proxy-Authorization header. */
  readonly requests: { target: string; authorization: string | undefined }[];
  /** Answer every CONNECT with this status instead of a tunnel (undefined: tunnel). */
  refuseWith: number | undefined;
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<TestProxy> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(405).end();
  });
  const state: TestProxy = {
    port: 0,
    tunnels: 0,
    requests: [],
    refuseWith: undefined,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    state.requests.push({ target: req.url ?? '', authorization: req.headers['proxy-authorization'] });
    if (state.refuseWith !== undefined) {
      const status = state.refuseWith;
      const extra = status === 407 ? 'Proxy-Authenticate: Basic realm="test"\r\n' : '';
      client.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n${extra}Content-Length: 0\r\n\r\n`);
      return;
    }
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const upstream = net.connect({ host: m[1], port: Number(m[2]) });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.once('connect', () => {
      (state as { tunnels: number }).tunnels++;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.port = (server.address() as AddressInfo).port;
  return state;
}
