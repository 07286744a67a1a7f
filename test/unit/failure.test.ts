// Checks the failure a command's error becomes: Python's exception class and str(exception), as the
// master would get them from buildbot-worker.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toFailure } from '../../agent/commands/failure.js';
import { AgentError, CommandArgsError } from '../../agent/errors.js';
import { PyError } from '../../agent/py/exceptions.js';
import { python } from '../helpers/python.js';

function nodeError(path: string): NodeJS.ErrnoException {
  try {
    readFileSync(path);
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error(`${path} exists`);
}

describe('toFailure', () => {
  it("a Node system error is python's OSError subclass, str() naming the path as repr() shows it", () => {
    const paths = ['/no/such/file', "/no/such/it's", '/no/such/tab\there'];
    const want = python(
      'import errno, os\nprint(json.dumps([str(FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), p)) for p in arg]))',
      paths,
    ) as string[];
    paths.forEach((p, i) => expect(toFailure(nodeError(p))).toMatchObject({ type: 'FileNotFoundError', message: want[i] }));
  });

  it('an errno without a subclass of its own is OSError; one the strerror table lacks keeps Node’s text', () => {
    const nospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, path: '/x' });
    expect(toFailure(nospc)).toMatchObject({ type: 'OSError', message: "[Errno 28] No space left on device: '/x'" });
    const again = Object.assign(new Error('EAGAIN: resource temporarily unavailable, read'), { code: 'EAGAIN', errno: -11 });
    expect(toFailure(again)).toMatchObject({ type: 'BlockingIOError', message: '[Errno 11] Resource temporarily unavailable' });
    const odd = Object.assign(new Error('EFTYPE: odd'), { code: 'EFTYPE', errno: -79 });
    expect(toFailure(odd)).toMatchObject({ type: 'OSError', message: 'EFTYPE: odd' });
  });

  it("the agent's own errors: a Python type when they name one, Exception otherwise", () => {
    expect(toFailure(new PyError('ValueError', 'embedded null byte', 'E_NUL_IN_PATH'))).toMatchObject({ type: 'ValueError', message: 'embedded null byte' });
    expect(toFailure(new CommandArgsError('missing args: path'))).toMatchObject({ type: 'ValueError', message: 'missing args: path' });
    expect(toFailure(new AgentError('E_NO_BUILDER', 'it broke'))).toMatchObject({ type: 'Exception', message: 'it broke' });
    expect(toFailure('plain')).toEqual({ type: 'Exception', message: 'plain', traceback: 'plain' });
  });

  it('the traceback lists the stack as file:line:function', () => {
    const f = toFailure(new Error('x'));
    expect(f.traceback.split('\n')[0]).toMatch(/^.+:\d+:.+$/);
  });
});
