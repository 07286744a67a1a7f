// Opens the connection one fetch attempt speaks HTTP over: TCP to the server, or to an http:// proxy (which then
// gets an absolute-URI request for an http URL, or a CONNECT tunnel for https), then TLS for https. All of it
// under one connect timeout and the caller's AbortSignal; the socket comes back connected and ready, so the
// HTTP layer (http-attempt.ts) never waits for a connection and has one idle timeout to watch.

import http from 'node:http';
import net from 'node:net';
import { AgentError } from '../errors.js';
import { portOf, unbracket, type Proxy } from './proxy.js';
import { RetryableError } from './retry.js';

export interface ConnectOptions {
  /** Give up on TCP + proxy tunnel + TLS handshake after this long (ms). */
  connectTimeoutMs: number;
  signal?: AbortSignal;
  /** Extra trusted certificate authorities for https (PEM); the system's are used as well. */
  ca?: string | Buffer | Array<string | Buffer>;
}

/** How the request line should name its target: origin-form (`/path`) direct or tunnelled, the absolute URL to a proxy. */
export interface Connection {
  socket: net.Socket;
  absoluteForm: boolean;
}

/** Connects to `target` (through `proxy` when given). Rejects with RetryableError on a timeout. */
export function connect(target: URL, proxy: Proxy | undefined, opts: ConnectOptions): Promise<Connection> {
  const sockets: net.Socket[] = [];
  let settled = false;
  const track = <S extends net.Socket>(s: S): S => {
    sockets.push(s);
    if (settled) s.destroy(); // a late step of a connection that already timed out or was aborted
    s.on('error', () => {}); // errors reach the caller through the promise below; never crash the process
    return s;
  };
  const work = async (): Promise<Connection> => {
    if (proxy === undefined) {
      const raw = await tcp(unbracket(target.hostname), portOf(target), track);
      return { socket: target.protocol === 'https:' ? await startTls(raw, target, opts, track) : raw, absoluteForm: false };
    }
    if (target.protocol !== 'https:') return { socket: await tcp(proxy.host, proxy.port, track), absoluteForm: true };
    const tunnel = await openTunnel(target, proxy, track);
    return { socket: await startTls(tunnel, target, opts, track), absoluteForm: false };
  };
  return new Promise<Connection>((resolve, reject) => {
    const finish = (err: Error | undefined, conn?: Connection): void => {
      if (settled) return void conn?.socket.destroy();
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        for (const s of sockets) s.destroy();
        reject(err);
      } else resolve(conn!);
    };
    const onAbort = (): void => finish(new AgentError('E_FETCH_ABORTED', `connecting to ${target.host} aborted`));
    const timer = setTimeout(
      () =>
        finish(
          new RetryableError(
            'E_FETCH_TIMEOUT',
            `no connection to ${proxy ? `proxy ${proxy.host}:${proxy.port}` : target.host} within ${opts.connectTimeoutMs / 1000} s`,
          ),
        ),
      opts.connectTimeoutMs,
    );
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    work().then(
      (conn) => finish(undefined, conn),
      (err: Error) => finish(err),
    );
  });
}

function tcp(host: string, port: number, track: (s: net.Socket) => net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = track(net.connect({ host, port }));
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * node:tls, loaded at the first https:// download: loading it pages in OpenSSL's TLS code and tables, ~4 MiB of
 * RSS at every start otherwise (docs/install.md, "Speed and memory"). process.getBuiltinModule (Node >= 20.16)
 * also works inside the single executable; import() serves older Node.
 */
async function loadTls(): Promise<typeof import('node:tls')> {
  const get = (process as { getBuiltinModule?: (id: 'node:tls') => typeof import('node:tls') }).getBuiltinModule;
  return get?.call(process, 'node:tls') ?? import('node:tls');
}

async function startTls(raw: net.Socket, target: URL, opts: ConnectOptions, track: (s: net.Socket) => net.Socket): Promise<net.Socket> {
  const host = unbracket(target.hostname);
  const tls = await loadTls();
  return new Promise((resolve, reject) => {
    const s = track(
      tls.connect({
        socket: raw,
        host,
        servername: net.isIP(host) === 0 ? host : undefined, // SNI carries names only (RFC 6066)
        ca: opts.ca === undefined ? undefined : [...tls.rootCertificates, ...(Array.isArray(opts.ca) ? opts.ca : [opts.ca])],
        ALPNProtocols: ['http/1.1'],
      }),
    );
    s.once('secureConnect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** CONNECT host:port through an http proxy; resolves with the raw tunnel once the proxy answered 2xx. */
function openTunnel(target: URL, proxy: Proxy, track: (s: net.Socket) => net.Socket): Promise<net.Socket> {
  const authority = `${target.hostname}:${portOf(target)}`; // hostname keeps IPv6 brackets, as CONNECT wants
  const headers: Record<string, string> = { Host: authority };
  if (proxy.authorization !== undefined) headers['Proxy-Authorization'] = proxy.authorization;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.host, port: proxy.port, method: 'CONNECT', path: authority, headers, agent: false });
    req.on('socket', (s) => track(s));
    req.once('error', reject);
    req.once('connect', (res: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        if (head.length > 0) socket.unshift(head);
        return resolve(socket);
      }
      socket.destroy();
      const why = `proxy ${proxy.host}:${proxy.port} answered CONNECT ${authority} with ${status} ${res.statusMessage ?? ''}`.trimEnd();
      // 407 (credentials) and 403 (policy) will not change on their own; a 5xx (the proxy could not reach the host) may
      reject(status >= 500 || status === 408 || status === 429 ? new RetryableError('E_FETCH_PROXY', why) : new AgentError('E_FETCH_PROXY', why));
    });
    req.end();
  });
}
