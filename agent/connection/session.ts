// What every protocol's session gives the connection manager: how it ended, and a way to end it. The
// manager (reconnect policy) and the protocols (wire) both depend on this, never on each other.

export type SessionEndCause = 'master' | 'liveness' | 'local';

export interface SessionEnd {
  cause: SessionEndCause;
  /** Why, for the log line. */
  reason: string;
}

export interface LiveSession {
  /** Resolves when the connection ended, for whatever reason. */
  readonly closed: Promise<SessionEnd>;
  close(): void;
}
