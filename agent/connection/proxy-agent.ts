// The msgpack WebSocket's way through an HTTP CONNECT proxy (proxy.ts): an http.Agent whose connections are
// tunnels. Apart from proxy.ts because it loads node:http, which a PB worker does not otherwise need.

import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyEndpoint } from '../config/proxy.js';
import { openTunnel } from './proxy.js';

/**
 * An http.Agent that opens each connection through the proxy (TLS on top for https://), for the msgpack
 * WebSocket: ws hands its request to the agent, whose connection is then the tunnel.
 */
export class TunnelAgent extends http.Agent {
  constructor(
    private readonly proxy: ProxyEndpoint,
    private readonly tlsOptions: { ca: Buffer[] | undefined } | undefined,
    private readonly timeoutMs: number,
  ) {
    super({ keepAlive: false });
    // https.request (wss://) takes only an agent of its own protocol; the TLS is ours (createConnection)
    if (tlsOptions) Object.assign(this, { protocol: 'https:' });
  }

  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, socket: Duplex) => void): Duplex | undefined {
    const host = (options.hostname ?? options.host ?? '').replace(/^\[(.*)\]$/, '$1');
    const port = Number(options.port);
    openTunnel(this.proxy, { host, port, timeoutMs: this.timeoutMs }).then(
      async (socket) => {
        // the master says nothing before the upgrade request (nor before the TLS client hello): nothing can be missed
        socket.resume();
        if (!this.tlsOptions) return callback?.(null, socket);
        const tls = await import('node:tls');
        const secure = tls.connect({ socket, ca: this.tlsOptions.ca, servername: net.isIP(host) ? undefined : host });
        callback?.(null, secure);
      },
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
