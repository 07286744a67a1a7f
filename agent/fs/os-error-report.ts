// How buildbot-worker's file commands report an OSError: not as a failure but as a header line and the errno
// as rc, so the step fails with the text the Python worker would have shown.

import { PyOSError, toPyError } from '../py/os-error.js';

/** What the file commands report for an OSError: ('header', '<cmd>: <strerror>: <path>') and ('rc', errno). */
export interface StatusSink {
  text(stream: 'header', text: string): void;
  status(key: string, value: number): void;
}

/**
 * buildbot-worker's `except OSError as e: sendStatus([('header', ...), ('rc', e.errno)])`; the path is shown as
 * it is, not as repr() (`'{0}: {1}: {2}'.format(self.header, e.strerror, path)`). Errors Python would not raise
 * as OSError (ValueError for a NUL, bugs) are rethrown and fail the command.
 */
export function reportOSError(io: StatusSink, header: string, path: string, err: unknown): void {
  const e = toPyError(err, path);
  if (!(e instanceof PyOSError)) throw e;
  io.text('header', `${header}: ${e.strerror}: ${path}`);
  io.status('rc', e.errno);
}
