// Asks a running agent over its control socket (server.ts): one request, one reply, bounded in time and size.

import net from 'node:net';
import path from 'node:path';
import { controlEndpoint, controlSocketOwned, ownerOf, type ControlEndpoint } from '../../platforms/control-endpoint.js';
import { AgentError } from '../errors.js';
import { BASEDIR_LAYOUT } from '../layout.js';

/** Subdirectory of the agent's own directory (.bbagent) that holds the control socket, owner-only. */
export const RUN_DIR = 'run';

/** How long the client waits for the agent to answer (it answers at once; a stalled loop may delay it). */
export const CLIENT_TIMEOUT_MS = 5000;
/** A reply larger than this is not a status reply (hundreds of running commands fit in a few hundred KiB). */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/**
 * The control endpoint of the agent of `basedir` (its top-level worker's base directory): as the agent serves
 * it ('agent': run by this process's user), or as a client finds it ('client': the agent's user is the owner of
 * its run directory, which may not be this process's).
 */
export function endpointFor(basedir: string, who: 'agent' | 'client'): ControlEndpoint {
  const runDir = runDirOf(basedir);
  return who === 'agent' ? controlEndpoint(runDir) : controlEndpoint(runDir, undefined, ownerOf(runDir));
}

/** BASEDIR/.bbagent/run: the agent makes it (owner-only) even when its socket is elsewhere, so its owner tells whose agent it is. */
export function runDirOf(basedir: string): string {
  return path.join(path.resolve(basedir), BASEDIR_LAYOUT.state, RUN_DIR);
}

/** Nothing listens at the endpoint: the agent is not running (or was killed before it could clean up). */
export class NotRunningError extends AgentError {
  constructor(readonly endpoint: string) {
    super('E_CONTROL', `no agent answers at ${endpoint}`);
  }
}

/** Sends `request` and resolves with the parsed reply; NotRunningError when nothing listens, E_CONTROL otherwise. */
export function askAgent(endpoint: ControlEndpoint, request: object, timeoutMs: number = CLIENT_TIMEOUT_MS): Promise<unknown> {
  if (!controlSocketOwned(endpoint)) {
    return Promise.reject(new AgentError('E_CONTROL', `${endpoint.path} does not belong to the agent's user (${endpoint.owner ?? '?'}): not asking it`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const socket = net.connect(endpoint.path);
    const finish = (err: Error | null, value?: unknown): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.setTimeout(timeoutMs, () => finish(new AgentError('E_CONTROL', `the agent at ${endpoint.path} did not answer within ${timeoutMs / 1000} s`)));
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_REPLY_BYTES) return finish(new AgentError('E_CONTROL', `the reply from ${endpoint.path} is over ${MAX_REPLY_BYTES} bytes`));
      chunks.push(b);
    });
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        finish(null, JSON.parse(text));
      } catch {
        finish(new AgentError('E_CONTROL', `the reply from ${endpoint.path} is not JSON: ${JSON.stringify(text.slice(0, 80))}`));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // no socket file, or one nobody listens on (an agent killed with SIGKILL leaves it)
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') finish(new NotRunningError(endpoint.path));
      else finish(new AgentError('E_CONTROL', `cannot reach the agent at ${endpoint.path}: ${err.message}`));
    });
  });
}
