// Checks the exception hierarchy against python3's own MROs, and PyError's shape.

import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { osErrorClass, KNOWN_ERRNOS } from '../../agent/py/errno.js';
import { EXC_TAIL, KNOWN_BUILTINS, PyError, pythonParents, qualifyType } from '../../agent/py/exceptions.js';
import { python } from '../helpers/python.js';

describe('exception classes', () => {
  it("pythonParents is python's MRO for every builtin the table knows", () => {
    const mros = python(
      'import builtins\nprint(json.dumps({n: [c.__module__ + "." + c.__qualname__ for c in getattr(builtins, n).__mro__] for n in arg if n != "object"}))',
      KNOWN_BUILTINS,
    ) as Record<string, string[]>;
    for (const [name, mro] of Object.entries(mros)) expect(pythonParents(`builtins.${name}`)).toEqual(mro);
  });

  it('every OSError subclass of the errno table has its whole MRO', () => {
    for (const cls of new Set(KNOWN_ERRNOS.map(osErrorClass))) {
      if (cls !== undefined) expect(pythonParents(`builtins.${cls}`)).toContain('builtins.OSError');
    }
  });

  it('a class the table does not know derives from Exception', () => {
    expect(pythonParents('re.error')).toEqual(['re.error', ...EXC_TAIL]);
    expect(pythonParents('builtins.NoSuchThing')).toEqual(['builtins.NoSuchThing', ...EXC_TAIL]);
    expect(pythonParents('builtins.toString')).toEqual(['builtins.toString', ...EXC_TAIL]);
  });

  it('qualifies bare names as builtins', () => {
    expect(qualifyType('ValueError')).toBe('builtins.ValueError');
    expect(qualifyType('buildbot_worker.base.UnknownCommand')).toBe('buildbot_worker.base.UnknownCommand');
  });

  it('PyError carries the Python type, a stable code, and is an AgentError', () => {
    const e = new PyError('ValueError', 'embedded null byte', 'E_NUL_IN_PATH');
    expect(e).toBeInstanceOf(AgentError);
    expect(e).toMatchObject({ pyType: 'ValueError', name: 'ValueError', code: 'E_NUL_IN_PATH', message: 'embedded null byte' });
  });
});
