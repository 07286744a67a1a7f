// Tar header blocks as Python 3.11's tarfile writes them in PAX format (TarInfo.create_pax_header /
// _create_header): a PAX extended header for what ustar cannot hold (and always for the float mtime), then ustar.

import { PyError } from '../py/exceptions.js';
import { fsencode } from '../py/fsencoding.js';
import { pyFloatRepr, roundHalfEven } from '../py/float.js';

export const BLOCKSIZE = 512;
/** An archive ends on a whole record of 20 blocks (like tar -b20). */
export const RECORDSIZE = BLOCKSIZE * 20;
const LENGTH_NAME = 100;
const LENGTH_LINK = 100;

export const REGTYPE = '0';
export const LNKTYPE = '1';
export const SYMTYPE = '2';
export const CHRTYPE = '3';
export const BLKTYPE = '4';
export const DIRTYPE = '5';
export const FIFOTYPE = '6';

/** The fields of one member's header (TarInfo). */
export interface MemberInfo {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** Python str facts about a name that may hold surrogate-escaped bytes. */
const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const pyLen = (s: string): number => [...s].length;

/** s.encode('ascii', 'replace'): one '?' per non-ASCII code point. */
function asciiReplace(s: string): Buffer {
  let out = '';
  for (const ch of s) out += ch.codePointAt(0)! < 0x80 ? ch : '?';
  return Buffer.from(out, 'latin1');
}

/** The member's header blocks: a PAX extended header when needed (always, for the float mtime), then ustar. */
export function paxHeader(info: MemberInfo): Buffer {
  const pax: [string, string][] = [];
  const fields = { ...info };
  for (const [key, hname, length] of [
    ['name', 'path', LENGTH_NAME],
    ['linkname', 'linkpath', LENGTH_LINK],
    ['uname', 'uname', 32],
    ['gname', 'gname', 32],
  ] as const) {
    const v = fields[key];
    if (!isAscii(v) || pyLen(v) > length) pax.push([hname, v]);
  }
  for (const [key, digits] of [
    ['uid', 8],
    ['gid', 8],
    ['size', 12],
    ['mtime', 12],
  ] as const) {
    const val = fields[key];
    const isFloat = key === 'mtime'; // st_mtime is a Python float; the others are ints
    const valInt = isFloat ? roundHalfEven(val) : val;
    let needsPax = false;
    if (!(valInt >= 0 && valInt < 8 ** (digits - 1))) {
      fields[key] = 0;
      needsPax = true;
    } else if (isFloat) {
      // rounded value in the ustar header, full precision in the pax header
      fields[key] = valInt;
      needsPax = true;
    }
    if (needsPax) pax.push([key, isFloat ? pyFloatRepr(val) : String(val)]);
  }
  const head = pax.length ? paxGenericHeader(pax) : Buffer.alloc(0);
  return Buffer.concat([head, ustarBlock(fields)]);
}

/** tarfile._create_pax_generic_header: an 'x' member whose data are the "len key=value\n" records. */
function paxGenericHeader(pax: [string, string][]): Buffer {
  const binary = pax.some(([, v]) => LONE_SURROGATE.test(v));
  const records: Buffer[] = [];
  if (binary) records.push(Buffer.from('21 hdrcharset=BINARY\n'));
  for (const [k, v] of pax) {
    const keyword = Buffer.from(k, 'utf8');
    // with hdrcharset=BINARY the original bytes are restored (surrogateescape)
    const value = binary ? fsencode(v) : Buffer.from(v, 'utf8');
    const l = keyword.length + value.length + 3; // ' ' + '=' + '\n'
    let p = 0;
    for (;;) {
      const n = l + String(p).length;
      if (n === p) break;
      p = n;
    }
    records.push(Buffer.from(`${p} `), keyword, Buffer.from('='), value, Buffer.from('\n'));
  }
  const data = Buffer.concat(records);
  const header = ustarBlock({
    name: '././@PaxHeader',
    mode: 0,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    type: 'x',
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  const pad = data.length % BLOCKSIZE ? BLOCKSIZE - (data.length % BLOCKSIZE) : 0;
  return Buffer.concat([header, data, Buffer.alloc(pad)]);
}

/** tarfile._create_header(info, USTAR_FORMAT, 'ascii', 'replace'). */
function ustarBlock(info: MemberInfo): Buffer {
  const b = Buffer.alloc(BLOCKSIZE);
  const str = (s: string, off: number, len: number): void => {
    // the common case (an ASCII name) is written as it is; latin1 writes one byte per character
    if (isAscii(s)) b.write(s, off, Math.min(len, s.length), 'latin1');
    else asciiReplace(s).copy(b, off, 0, len);
  };
  const num = (n: number, off: number, digits: number): void => {
    b.write(itn(n, digits), off, 'latin1');
  };
  const dev = info.type === CHRTYPE || info.type === BLKTYPE;
  str(info.name, 0, 100);
  num(info.mode & 0o7777, 100, 8);
  num(info.uid, 108, 8);
  num(info.gid, 116, 8);
  num(info.size, 124, 12);
  num(info.mtime, 136, 12);
  b.write('        ', 148, 'latin1');
  b.write(info.type, 156, 'latin1');
  str(info.linkname, 157, 100);
  b.write('ustar\x0000', 257, 'latin1');
  str(info.uname, 265, 32);
  str(info.gname, 297, 32);
  if (dev) {
    num(info.devmajor, 329, 8);
    num(info.devminor, 337, 8);
  }
  // prefix (345, 155) stays empty in PAX format
  let sum = 0;
  for (let i = 0; i < BLOCKSIZE; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'latin1');
  return b;
}

/** tarfile.itn for POSIX formats: zero-padded octal and a NUL. */
function itn(n: number, digits: number): string {
  const v = Math.trunc(n);
  if (!(v >= 0 && v < 8 ** (digits - 1))) throw new PyError('ValueError', 'overflow in number field', 'E_TAR_FIELD');
  return `${v.toString(8).padStart(digits - 1, '0')}\0`;
}
