// Checks the os.path and file system encoding ports against python3's posixpath and os.fsdecode/fsencode.

import { describe, expect, it } from 'vitest';
import { fsdecode, fsencode } from '../../agent/py/fsencoding.js';
import { pathDirname, pathJoin, pathSplit } from '../../agent/py/os-path.js';
import { timeFloat, timeSeconds } from '../../agent/py/os.js';
import { python } from '../helpers/python.js';

const PATHS = ['', '/', '//', '///a', 'a', 'a/', 'a/b', '/a/b/', 'a//b', '/a//b//', './x', '../x/y', 'é/ü'];

describe('os.path', () => {
  it("split and dirname are posixpath's", () => {
    const want = python('import posixpath\nprint(json.dumps([[list(posixpath.split(p)), posixpath.dirname(p)] for p in arg]))', PATHS) as [
      [string, string],
      string,
    ][];
    PATHS.forEach((p, i) => expect([p, pathSplit(p), pathDirname(p)]).toEqual([p, ...want[i]!]));
  });

  it("join of two parts is posixpath's", () => {
    const pairs = PATHS.flatMap((a) => ['b', '/b', '', 'b/'].map((b) => [a, b]));
    const want = python('import posixpath\nprint(json.dumps([posixpath.join(a, b) for a, b in arg]))', pairs) as string[];
    pairs.forEach(([a, b], i) => expect([a, b, pathJoin(a!, b!)]).toEqual([a, b, want[i]]));
  });
});

describe('file system encoding', () => {
  it("fsdecode is python's os.fsdecode (surrogateescape), and fsencode gives the bytes back", () => {
    const names = [[0x61, 0x62], [0xc3, 0xa9], [0xff, 0x61], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80, 0xc3, 0xa9, 0xfe]];
    const want = python('import os\nprint(json.dumps([os.fsdecode(bytes(b)) for b in arg]))', names) as string[];
    names.forEach((b, i) => {
      const name = fsdecode(Uint8Array.from(b));
      expect([b, name]).toEqual([b, want[i]]);
      expect([...fsencode(name)]).toEqual(b);
    });
  });
});

describe('stat times', () => {
  it("st_mtime is python's float of sec + nsec * 1e-9, seconds floor before 1970", () => {
    const ns = [1700000000123456789n, 0n, -1n, -1500000000n, 1795561837999999999n];
    const want = python('print(json.dumps([[n // 10**9, n // 10**9 + (n % 10**9) * 1e-9] for n in map(int, arg)]))', ns.map(String)) as [number, number][];
    ns.forEach((n, i) => expect([n, timeSeconds(n), timeFloat(n)]).toEqual([n, ...want[i]!]));
  });
});
