// Errors every protocol raises the same way, so that code above the protocols (and the protocols' own callers)
// can tell them apart without knowing which protocol carried the call.

import { AgentError } from '../errors.js';

/** A request to the master that can no longer be answered: the connection went away before or while it was sent. */
export class ConnectionLostError extends AgentError {
  constructor(detail?: string) {
    super('E_CONNECTION_LOST', detail ? `Connection lost: ${detail}` : 'Connection lost');
  }
}
