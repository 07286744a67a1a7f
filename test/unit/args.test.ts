import { describe as suite, expect, it } from 'vitest';
import { argInt, describe } from '../../agent/commands/args.js';
import { CommandArgsError } from '../../agent/errors.js';

suite('describing a bad argument value', () => {
  it('names the type and the start of the value, without serializing all of it', () => {
    expect(describe('x'.repeat(16 * 1024 * 1024)).length).toBeLessThan(80);
    expect(describe(12n ** 40n)).toMatch(/^bigint 1/);
    expect(describe({ a: 1n })).toBe('a map');
    expect(describe(new Uint8Array(5))).toBe('bytes of length 5');
    expect(describe(null)).toBe('None');
  });

  it('a bigint where a map was expected is a clear argument error, not a TypeError', () => {
    expect(() => argInt({ blocksize: { big: 1n } }, 'blocksize')).toThrow(CommandArgsError);
  });
});
