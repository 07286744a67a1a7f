// The HTTP CONNECT proxy of buildbot-worker's --proxy-connection-string: the worker opens a TCP connection to the
// proxy, asks it for a tunnel to the master (CONNECT host:port), and then speaks its protocol (PB, TLS on top
// when useTls; or the msgpack WebSocket) through that tunnel as over a direct connection. buildbot-worker
// (buildbot_worker/tunnel.py) takes a Twisted client endpoint string for the proxy (tcp:host=H:port=P); an
// http://[user:password@]host:port URL is read too, its user and password sent as Proxy-Authorization: Basic.

import net from 'node:net';
import { AgentError } from '../errors.js';
import type { ProxyEndpoint } from '../config/proxy.js';

export { parseProxyConnectionString, type ProxyEndpoint } from '../config/proxy.js';

/** The longest proxy answer (status line and headers) read before the tunnel: a proxy is not a master. */
export const MAX_PROXY_RESPONSE_BYTES = 16 * 1024;

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** How messages name the proxy. */
export function describeProxy(p: Pick<ProxyEndpoint, 'host' | 'port'>): string {
  return `HTTP proxy ${hostPort(p.host, p.port)}`;
}

/** What a refusal means, for the operator. */
function refusalHint(status: number): string {
  if (status === 407) return ': the proxy wants credentials (give them as http://USER:PASSWORD@HOST:PORT)';
  if (status === 403) return ': the proxy does not allow tunnels to this host and port (check its CONNECT rules)';
  return '';
}

interface TunnelTarget {
  host: string;
  port: number;
  timeoutMs: number;
}

/**
 * Opens a tunnel through the proxy to host:port; resolves with the socket, paused (resume it once listening),
 * whose next bytes are the master's.
 * Rejects with E_PROXY naming the proxy: not reachable, refused (with the status), no answer in time.
 */
export function openTunnel(proxy: ProxyEndpoint, target: TunnelTarget): Promise<net.Socket> {
  const via = describeProxy(proxy);
  const to = hostPort(target.host, target.port);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let head = Buffer.alloc(0);
    const fail = (why: string): void => {
      cleanup();
      socket.destroy();
      reject(new AgentError('E_PROXY', `${via}: ${why} (tunnel to the master at ${to})`));
    };
    const timer = setTimeout(() => fail(`no answer to CONNECT within ${target.timeoutMs} ms`), target.timeoutMs);
    const onError = (err: Error): void => fail(`cannot connect to the proxy: ${err.message}`);
    const onClose = (): void => fail('the proxy closed the connection before answering CONNECT');
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_PROXY_RESPONSE_BYTES) fail(`answered CONNECT with more than ${MAX_PROXY_RESPONSE_BYTES} bytes of headers`);
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (!m) return fail(`answered CONNECT with ${JSON.stringify(statusLine.slice(0, 80))}, not an HTTP status line`);
      const status = Number(m[1]);
      if (status < 200 || status > 299) {
        cleanup();
        // node:http (for the status's usual text) is not loaded by a worker without a proxy: loaded here, on a refusal
        void import('node:http').then((http) => {
          const text = m[2] ?? http.STATUS_CODES[status] ?? '';
          fail(`refused the tunnel with HTTP ${status}${text ? ` ${text}` : ''}${refusalHint(status)}`);
        });
        return;
      }
      // paused, with the master's first bytes (if the proxy sent any with its answer) put back to be read first
      socket.pause();
      cleanup();
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    function cleanup(): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('connect', () => {
      const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : '';
      socket.write(`CONNECT ${to} HTTP/1.1\r\nHost: ${to}\r\n${auth}\r\n`);
    });
  });
}

/**
 * Whether the master accepts a TCP connection now (through the proxy when given), closed at once: the failover
 * watch's check of a preferred master, which disturbs no session. Rejects naming why not.
 */
export async function probeEndpoint(e: { host: string; port: number }, proxy: ProxyEndpoint | undefined, timeoutMs: number): Promise<void> {
  if (proxy) {
    (await openTunnel(proxy, { host: e.host, port: e.port, timeoutMs })).destroy();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: e.host, port: e.port });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new AgentError('E_CONNECT', `cannot connect to ${e.host}:${e.port}: ${err.message}`));
    });
  });
}
