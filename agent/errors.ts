// Errors the agent raises carry a stable `code` and a message naming what was wrong.

export class AgentError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'AgentError';
  }
}

/** Raised synchronously when the master asks for a command the agent does not have. */
export class UnknownCommandError extends AgentError {
  constructor(name: string) {
    super('E_UNKNOWN_COMMAND', `unrecognized WorkerCommand '${name}'`);
  }
}

/** Raised synchronously when a command's required arguments are missing or of the wrong type. */
export class CommandArgsError extends AgentError {
  /** buildbot-worker raises ValueError for missing or bad arguments. */
  readonly pyType = 'ValueError';
  constructor(message: string) {
    super('E_COMMAND_ARGS', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
