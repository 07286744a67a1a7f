// The buildbot.tac reader on its own: Python literals as Python reads them, statements cut as Python cuts them,
// and the Worker call's arguments resolved, without running anything.

import { describe, expect, it } from 'vitest';
import { parseLiteral, splitTopLevel, statements } from '../../agent/cli/tac-python.js';
import { parseTac } from '../../agent/cli/tac.js';

describe('Python literals', () => {
  it('reads what repr() writes, and integers in every base', () => {
    expect(parseLiteral(`'p@ss"w\\'d\\\\x\\tÿ'`)).toBe(`p@ss"w'd\\x\tÿ`);
    expect(parseLiteral(`"it's"`)).toBe("it's");
    expect(parseLiteral(`'\\x00\\u20ac\\U0001F600\\101\\q'`)).toBe('\x00€😀A\\q');
    expect(parseLiteral(`r'C:\\new\\tmp'`)).toBe('C:\\new\\tmp');
    expect(parseLiteral(`u'x'`)).toBe('x');
    expect([parseLiteral('None'), parseLiteral('True'), parseLiteral('False')]).toEqual([null, true, false]);
    expect(['0o22', '022', '18', '0x12', '0b10010', '1_8', '-3', '0'].map(parseLiteral)).toEqual([18, 18, 18, 18, 18, 18, -3, 0]);
  });

  it('refuses what is not one literal', () => {
    for (const text of ["'a' 'b'", "'a' + 'b'", 'f"{x}"', 'os.environ["PW"]', '08', '1.5', "'\\N{BULLET}'", '(1)', 'x', "'unterminated"]) {
      expect(parseLiteral(text), text).toBeUndefined();
    }
  });
});

describe('statements', () => {
  it('joins bracketed and backslashed lines, drops comments, keeps the first line number', () => {
    const text = "a = 1  # one\n\nb = Worker(x,\n  y, # why\n  z)\nc = \\\n  'd#e'\n";
    expect(statements(text)).toEqual([
      { line: 1, indent: 0, code: 'a = 1' },
      { line: 3, indent: 0, code: 'b = Worker(x, y, z)' },
      { line: 6, indent: 0, code: "c = 'd#e'" },
    ]);
    expect(splitTopLevel("a, b=(c, d), 'e,f',")).toEqual(['a', 'b=(c, d)', "'e,f'"]);
  });

  it('refuses a triple-quoted string and an unclosed bracket, naming the line', () => {
    expect(() => statements('x = 1\ny = """doc"""\n')).toThrow(expect.objectContaining({ line: 2 }));
    expect(() => statements('x = 1\ns = Worker(a,\n')).toThrow(expect.objectContaining({ line: 2 }));
  });
});

describe('parseTac', () => {
  const head = "from twisted.application import service\napplication = service.Application('buildbot-worker')\n";

  it("resolves the Worker's arguments from literals and variables, by position and keyword", () => {
    const tac = parseTac(
      `${head}host = 'm'\nkeepalive = 10\ns = Worker(host, 9989, 'w', 'pw', '.', keepalive, maxdelay=5)\ns.setServiceParent(application)\n`,
      'T',
    );
    expect(Object.fromEntries(Object.entries(tac.args).map(([k, v]) => [k, v.value]))).toEqual({
      buildmaster_host: 'm',
      port: 9989,
      name: 'w',
      passwd: 'pw',
      basedir: '.',
      keepalive: 10,
      maxdelay: 5,
    });
    expect(tac.args.keepalive?.line).toBe(4);
    expect(tac.logRotation).toBe(false);
  });

  it('refuses a buildslave tac, a tac without a Worker, and a Worker with unknown or misplaced arguments', () => {
    expect(() => parseTac("application = service.Application('buildslave')\n", 'T')).toThrow(/not a buildbot-worker buildbot\.tac/);
    expect(() => parseTac(head, 'T')).toThrow(/no "s = Worker\(\.\.\.\)" in it/);
    expect(() => parseTac(`${head}s = Worker('m', 1, 'w', 'p', '.', 600, colour='red')\n`, 'T')).toThrow(/T line 3: .*Worker has no parameter colour/);
    expect(() => parseTac(`${head}s = Worker('m', 1, 'w', 'p', '.', 600, umask=None, 5)\n`, 'T')).toThrow(/Worker's argument "5" cannot be placed/);
    expect(() => parseTac(`${head}import subprocess\n`, 'T')).toThrow(/T line 3: "import subprocess": not a statement create-worker writes/);
  });
});
