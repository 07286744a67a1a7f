// What PB makes of a command's arguments and status values, knowing no command: tuples inside sequences stay
// tuples (the shell's obfuscated words), other tuples become lists; PyFloat / PyTuple status values go as
// Python's float and tuple, byte for byte as buildbot-worker's elapsed and stat did.
import { describe, expect, it } from 'vitest';
import type { StatusValue } from '../../agent/output/types.js';
import { commandArgs } from '../../agent/connection/pb/arguments.js';
import { encode } from '../../agent/connection/pb/banana.js';
import { updateDicts } from '../../agent/connection/pb/command-link.js';
import { jelly } from '../../agent/connection/pb/jelly.js';
import { PyFloat, PyTuple } from '../../agent/py/values.js';

describe('PB command arguments', () => {
  it("keeps a tuple inside a list a tuple: ('obfuscated', real, fake) among the words", () => {
    const got = commandArgs({ command: ['echo', new PyTuple([Buffer.from('obfuscated'), 'secret', 'XXX']), Buffer.from('x')] });
    expect(got['command']).toEqual(['echo', new PyTuple(['obfuscated', 'secret', 'XXX']), 'x']);
    // the same for a command sent as a tuple: its words are elements of a sequence
    expect(commandArgs({ command: new PyTuple(['a', new PyTuple(['obfuscated', 'r', 'f'])]) })['command']).toEqual([
      'a',
      new PyTuple(['obfuscated', 'r', 'f']),
    ]);
  });

  it('turns argument values and dict values that are tuples into lists, bytes into text', () => {
    const got = commandArgs({ dir: new PyTuple(['a', 'b']), env: { PATH: new PyTuple([Buffer.from('/bin'), '/usr/bin']) }, n: 3 });
    expect(got).toEqual({ dir: ['a', 'b'], env: { PATH: ['/bin', '/usr/bin'] }, n: 3 });
    expect(Array.isArray(got['dir'])).toBe(true);
  });
});

/** The bytes of one `update` call's argument list carrying one status item (dialect pb). */
function statusHex(key: string, value: StatusValue): string {
  return encode(jelly(updateDicts({ kind: 'status', key, value }).map((d) => [d, 0])), { vocab: true }).toString('hex');
}

describe('PB status values', () => {
  // [list, [dictionary, [unicode key, value]], 0]: what buildbot-worker sends (transcripts pb-04)
  const HEAD = '028008870380088702800587028002800782756e69636f6465';

  it('a PyFloat goes as a FLOAT, also when integral; a plain number as an INT', () => {
    expect(statusHex('elapsed', new PyFloat(1.5))).toBe(`${HEAD}0782656c6170736564843ff80000000000000081`);
    expect(statusHex('elapsed', new PyFloat(2))).toBe(`${HEAD}0782656c61707365648440000000000000000081`);
    expect(statusHex('rc', 0)).toBe(`${HEAD}0282726300810081`);
  });

  it('a PyTuple goes as a tuple, a list as a list', () => {
    const stat = [16877, 123, 2049, 2, 1000, 1000, 4096, 1700000000, 1700000001, 1700000002];
    // 0b 80 0b 87: a list of 11 headed by VOCAB word 11, 'tuple' (a list would be headed by 'list')
    expect(statusHex('stat', new PyTuple(stat))).toBe(
      `${HEAD}0482737461740b800b876d0301817b81011081028168078168078100208100624f2a068101624f2a068102624f2a06810081`,
    );
    expect(statusHex('files', ['a', 'b'])).toBe(`${HEAD}058266696c65730380088702800782756e69636f646501826102800782756e69636f64650182620081`);
  });
});
