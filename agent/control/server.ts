// The control socket: a Unix socket (owner-only, 0600, in an owner-only directory) or a named pipe, where
// `bbagent status` asks the running agent what it is doing. One JSON request line, one JSON reply line, then
// the connection closes. It is bounded: a request over MAX_REQUEST_BYTES, one not finished within
// REQUEST_TIMEOUT_MS, or more than MAX_CONNECTIONS clients at once are cut off; it never blocks the agent,
// and nothing a client sends can throw into it.

import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { controlSocketOwned, prepareControlDir, type ControlEndpoint } from '../../platforms/control-endpoint.js';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

/** A request is one short JSON line ({"request": "status"}): anything longer is not one. */
export const MAX_REQUEST_BYTES = 4096;
/** A client must have sent its request and read the reply within this time of connecting. */
export const REQUEST_TIMEOUT_MS = 2000;
/** Clients served at once (status is asked by hand or by a monitoring check, not by crowds). */
export const MAX_CONNECTIONS = 16;

/** One request: its `request` names what is asked; other members are the request's arguments. */
export interface ControlRequest {
  request: string;
  [arg: string]: unknown;
}

/** Answers a request: the reply object, or an error message for one it does not know. */
export type ControlHandler = (req: ControlRequest) => { ok: true; [k: string]: unknown } | { ok: false; error: string };

export interface ControlServer {
  readonly endpoint: ControlEndpoint;
  close(): void;
}

/** The request in a client's bytes, or why there is none. */
export function parseRequest(text: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'the request is not JSON';
  }
  if (typeof v !== 'object' || v === null || typeof (v as { request?: unknown }).request !== 'string') {
    return 'the request must be a JSON object with a "request" string, e.g. {"request": "status"}';
  }
  return v as ControlRequest;
}

/** Serves one client: reads its request line (bounded), answers, closes. */
function serveClient(socket: net.Socket, handle: ControlHandler, logger: Logger): void {
  let received = '';
  let answered = false;
  socket.setEncoding('utf8');
  // one deadline for the whole exchange (not an idle timeout: a client trickling a byte a second keeps none alive)
  const deadline = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS);
  deadline.unref();
  socket.on('close', () => clearTimeout(deadline));
  socket.on('error', () => socket.destroy()); // a client that goes away is no concern of the agent
  const answer = (reply: object): void => {
    if (answered) return;
    answered = true;
    // once the reply is out, whatever the client still sends is dropped with the connection
    socket.end(`${JSON.stringify(reply)}\n`, () => socket.destroy());
  };
  const complete = (text: string): void => {
    const req = parseRequest(text);
    if (typeof req === 'string') return answer({ ok: false, error: req });
    try {
      answer(handle(req));
    } catch (err) {
      logger.warn(`control socket: answering ${JSON.stringify(req.request).slice(0, 80)} failed: ${errorMessage(err)}`);
      answer({ ok: false, error: `the agent could not answer: ${errorMessage(err)}` });
    }
  };
  socket.on('data', (chunk: string) => {
    if (answered) return;
    received += chunk;
    const nl = received.indexOf('\n');
    if (nl >= 0) return complete(received.slice(0, nl));
    if (Buffer.byteLength(received) > MAX_REQUEST_BYTES) answer({ ok: false, error: `the request is longer than ${MAX_REQUEST_BYTES} bytes` });
  });
  socket.on('end', () => {
    if (!answered && received.trim() !== '') complete(received);
    else socket.end();
  });
}

/** Connects to the endpoint: resolves true if something answers there (another agent), false if nothing does. */
function endpointAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (live: boolean): void => {
      s.destroy();
      resolve(live);
    };
    s.setTimeout(REQUEST_TIMEOUT_MS, () => done(true));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Listens on the endpoint. A socket file left by an agent that was killed is replaced; one that answers
 * belongs to a live agent, and this one then serves none (E_CONTROL).
 */
export async function startControlServer(endpoint: ControlEndpoint, handle: ControlHandler, logger: Logger): Promise<ControlServer> {
  prepareControlDir(endpoint);
  if (endpoint.dir !== null) {
    if (controlSocketOwned(endpoint) && (await endpointAnswers(endpoint.path))) {
      throw new AgentError('E_CONTROL', `control socket ${endpoint.path}: another agent answers there`);
    }
    try {
      unlinkSync(endpoint.path);
    } catch {
      // none was there
    }
  }
  const server = net.createServer((socket) => serveClient(socket, handle, logger));
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new AgentError('E_CONTROL', `control socket ${endpoint.path}: cannot listen: ${err.message}`)));
    server.listen(endpoint.path, () => resolve());
  });
  server.on('error', (err) => logger.warn(`control socket ${endpoint.path}: ${err.message}`));
  // its directory is owner-only already; the socket itself too, for a directory someone opened up
  if (endpoint.dir !== null) chmodSync(endpoint.path, 0o600);
  return {
    endpoint,
    close: () => {
      server.close();
      if (endpoint.dir !== null) {
        try {
          unlinkSync(endpoint.path);
        } catch {
          // already gone
        }
      }
    },
  };
}
