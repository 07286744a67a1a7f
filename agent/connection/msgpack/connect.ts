// Opens the msgpack worker WebSocket: HTTP Basic auth on the upgrade request, binary messages, permessage-deflate
// offered (the 3.7 master's autobahn server accepts none unless patched) and, if accepted, bounded by inflate.ts.
// A refused password is an error value with code E_AUTH.

import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { AgentError } from '../../errors.js';
import { MAX_INFLATED_MESSAGE_BYTES, MAX_MESSAGE_BYTES } from '../limits.js';
import { boundInflation, wsInternalsProblem } from './inflate.js';
import type { ProxyEndpoint } from '../proxy.js';
import { TunnelAgent } from '../proxy-agent.js';

/** After our close frame, how long the master may take to answer before the socket is destroyed. */
export const CLOSE_GRACE_MS = 2000;

export interface MsgpackEndpoint {
  host: string;
  port: number;
  name: string;
  password: string;
  tls: boolean;
  /** Extra trusted CA certificates for wss:// (self-signed masters). */
  ca?: Buffer[] | undefined;
  /** Offer permessage-deflate (the 3.7 master accepts it only with the snippet in docs/output.md). */
  deflate?: boolean;
  /** Give up on an unanswered handshake after this long. */
  handshakeTimeoutMs: number;
  /** Reach the master through this HTTP CONNECT proxy (wss: TLS on top of the tunnel). */
  proxy?: ProxyEndpoint | undefined;
}

export function msgpackUrl(e: Pick<MsgpackEndpoint, 'host' | 'port' | 'tls'>): string {
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  return `${e.tls ? 'wss' : 'ws'}://${host}:${e.port}/`;
}

/**
 * Connects; `attach` runs synchronously when the socket opens, because the master speaks first and its first
 * message can arrive with the handshake response, before a promise continuation would run. It also gets the
 * connection's socket, whose bytes show the master alive (ws reports only whole messages and pongs).
 */
export function connectMsgpack<T = WebSocket>(e: MsgpackEndpoint, attach: (ws: WebSocket, socket: Duplex | undefined) => T = (ws) => ws as T): Promise<T> {
  if (e.name.includes(':')) {
    return Promise.reject(new AgentError('E_CONFIG', `worker name '${e.name}' contains ':', which HTTP Basic auth cannot carry`));
  }
  // a ws this build's deflate bound does not fit ends the start here, before any connection
  const broken = e.deflate ? wsInternalsProblem() : undefined;
  if (broken) return Promise.reject(broken);
  const url = msgpackUrl(e);
  const auth = Buffer.from(`${e.name}:${e.password}`, 'utf8').toString('base64');
  return new Promise((resolve, reject) => {
    // closeTimeout is a ws option its type definitions lack
    const options: WebSocket.ClientOptions & { closeTimeout: number } = {
      headers: { Authorization: `Basic ${auth}` },
      // level 1: most of the size gain for a fraction of the CPU; context takeover on, for the ratio on repetitive logs
      perMessageDeflate: e.deflate ? { zlibDeflateOptions: { level: 1 }, threshold: 256, clientNoContextTakeover: false } : false,
      handshakeTimeout: e.handshakeTimeoutMs,
      // Applies to each message as received (ws then closes with 1009); decompression is bounded by inflate.ts.
      maxPayload: MAX_MESSAGE_BYTES,
      closeTimeout: CLOSE_GRACE_MS,
      ...(e.ca ? { ca: e.ca } : {}),
      ...(e.proxy ? { agent: new TunnelAgent(e.proxy, e.tls ? { ca: e.ca } : undefined, e.handshakeTimeoutMs) } : {}),
    };
    const ws = new WebSocket(url, options);
    let settled = false;
    let socket: Duplex | undefined;
    ws.once('upgrade', (res) => (socket = res.socket));
    const fail = (err: AgentError): void => {
      if (settled) return;
      settled = true;
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    ws.once('open', () => {
      try {
        // before the first message is read: the master's can arrive with the handshake response
        boundInflation(ws, { keepBytes: MAX_MESSAGE_BYTES, maxBytes: MAX_INFLATED_MESSAGE_BYTES });
      } catch (err) {
        fail(err as AgentError);
        return;
      }
      settled = true;
      ws.removeAllListeners('unexpected-response');
      ws.removeAllListeners('error');
      ws.removeAllListeners('close');
      resolve(attach(ws, socket));
    });
    ws.once('unexpected-response', (_req, res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      if (code === 401) fail(new AgentError('E_AUTH', `master at ${url} refused worker '${e.name}': wrong worker name or password (HTTP 401)`));
      else fail(new AgentError('E_HANDSHAKE', `master at ${url} refused the WebSocket upgrade with HTTP ${code}`));
    });
    ws.once('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof AgentError) return fail(err); // the proxy's (proxy.ts), naming it
      fail(new AgentError(err.code === 'ECONNREFUSED' ? 'E_REFUSED' : 'E_CONNECT', `cannot connect to master at ${url}: ${err.message}`));
    });
    ws.once('close', () => fail(new AgentError('E_CONNECT', `master at ${url} closed the connection during the handshake`)));
  });
}
