// Checks str(OSError) against python3 (the filename as repr() shows it) and the conversion of Node's errors.

import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSystemError, PyOSError, pyOSError, toPyError } from '../../agent/py/os-error.js';
import { PyError } from '../../agent/py/exceptions.js';
import { python } from '../helpers/python.js';

const NAMES = ['/tmp/x', "it's", 'say "hi"', `both ' and "`, 'tab\there', 'nl\n', 'back\\slash', 'é', '\u00a0nbsp', '\u200bzw', '\x7f\x85', '\udcff', ''];

describe('OSError', () => {
  it("str() is python's, the filename as repr() shows it", () => {
    // JSON.stringify writes a lone surrogate as its escape, which python's json reads back as the same str
    const want = python('import errno, os\nprint(json.dumps([str(OSError(errno.ENOENT, os.strerror(errno.ENOENT), n)) for n in arg]))', NAMES) as string[];
    NAMES.forEach((n, i) => expect([n, pyOSError('ENOENT', n).message]).toEqual([n, want[i]]));
    expect(pyOSError('ENOENT', '\udcff').message).toBe("[Errno 2] No such file or directory: '\\udcff'");
  });

  it('the subclass, errno and strerror of the errno name', () => {
    const e = pyOSError('EACCES', '/x');
    expect(e).toBeInstanceOf(PyError);
    expect(e).toMatchObject({ pyType: 'PermissionError', errno: 13, strerror: 'Permission denied', filename: '/x', code: 'EACCES' });
    expect(new PyOSError('ENOSPC', 28).message).toBe('[Errno 28] No space left on device');
    expect(new PyOSError('EWHAT', 999).message).toBe('[Errno 999] Unknown error 999');
  });

  it("converts Node's errors: system errors to OSError, a NUL to ValueError, bugs unchanged", () => {
    let nodeErr: unknown;
    try {
      statSync('/no/such/file/here');
    } catch (err) {
      nodeErr = err;
    }
    expect(isSystemError(nodeErr)).toBe(true);
    expect(toPyError(nodeErr, '/no/such/file/here')).toMatchObject({
      pyType: 'FileNotFoundError',
      errno: 2,
      message: "[Errno 2] No such file or directory: '/no/such/file/here'",
    });
    let nulErr: unknown;
    try {
      statSync('a\0b');
    } catch (err) {
      nulErr = err;
    }
    expect(toPyError(nulErr)).toMatchObject({ pyType: 'ValueError', message: 'embedded null byte', code: 'E_NUL_IN_PATH' });
    const bug = new TypeError('x is not a function');
    expect(isSystemError(bug)).toBe(false);
    expect(toPyError(bug)).toBe(bug);
  });
});
