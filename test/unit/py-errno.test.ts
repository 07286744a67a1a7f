// Checks the errno table against python3 on this host: numbers, strerror texts and the OSError subclass of each.

import { describe, expect, it } from 'vitest';
import { errnoOf, KNOWN_ERRNOS, osErrorClass, strerror } from '../../agent/py/errno.js';
import { python } from '../helpers/python.js';

const py = python(
  'import errno, os\nprint(json.dumps({n: [getattr(errno, n, None), os.strerror(getattr(errno, n)) if hasattr(errno, n) else None, type(OSError(getattr(errno, n, 0), "x")).__name__] for n in arg}))',
  KNOWN_ERRNOS,
) as Record<string, [number | null, string | null, string]>;

describe('errno', () => {
  it('knows the usual errnos', () => {
    expect(KNOWN_ERRNOS.length).toBeGreaterThanOrEqual(80);
    expect(strerror('ENOENT')).toBe('No such file or directory');
    expect(strerror('EBOGUS')).toBeUndefined();
    expect(strerror('toString')).toBeUndefined();
  });

  it("strerror() texts are python's os.strerror", () => {
    for (const name of KNOWN_ERRNOS) expect([name, strerror(name)]).toEqual([name, py[name]![1]]);
  });

  it("numbers are python's errno module's (where Node knows the name)", () => {
    let compared = 0;
    for (const name of KNOWN_ERRNOS) {
      if (errnoOf(name) === 0) continue;
      compared++;
      expect([name, errnoOf(name)]).toEqual([name, py[name]![0]]);
    }
    expect(compared).toBeGreaterThanOrEqual(75);
    // a name Node does not know takes the number of the error that carries it (negative on POSIX)
    expect(errnoOf('ENOSUCHNAME', -108)).toBe(108);
  });

  it('the OSError subclass is the one python picks for the errno (PEP 3151)', () => {
    for (const name of KNOWN_ERRNOS) expect([name, osErrorClass(name) ?? 'OSError']).toEqual([name, py[name]![2]]);
    expect(osErrorClass('E_COMMAND_ARGS')).toBeUndefined();
  });
});
