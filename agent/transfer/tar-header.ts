// Tar header blocks as Python 3.11's tarfile writes them in PAX format (TarInfo.create_pax_header /
// _create_header): a PAX extended header for what ustar cannot hold (and always for the float mtime), then ustar.
// Most members need PAX for their mtime alone: `writeCommonHeader` writes those three blocks in place, byte for
// byte what `paxHeader` makes, at a fraction of the cost (measured: the headers of 2,000 small files were a third
// of the archive's CPU, and their garbage most of the rest).

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

/** Bytes `writeCommonHeader` writes: the PAX header block, its one-record data block, the ustar block. */
export const COMMON_HEADER_BYTES = 3 * BLOCKSIZE;

const PAX_NAME = '././@PaxHeader';
/** The checksum field counts as eight spaces. */
const ASCII_SPACE_SUM = 8 * 0x20;
/** The fields of a PAX extended header's ustar block (tarfile's: only the size varies). */
function paxHeaderFields(size: number): Parameters<typeof ustarBlock>[0] {
  return { name: PAX_NAME, mode: 0, uid: 0, gid: 0, size, mtime: 0, type: 'x', linkname: '', uname: '', gname: '', devmajor: 0, devminor: 0 };
}

/** The PAX header block of `paxGenericHeader` with size 0; only size and checksum differ between members. */
const PAX_TEMPLATE = ustarBlock(paxHeaderFields(0));
/** Its checksum with the size field's eleven '0' digits left out. */
const PAX_TEMPLATE_SUM = blockSum(PAX_TEMPLATE) - 11 * 0x30;
const MAX_ID = 8 ** 7;
const MAX_NUMBER = 8 ** 11;
const MAGIC = 'ustar\x0000';

/**
 * The common member (ASCII names that fit ustar, ids and size in range, mtime >= 0, not a device): its
 * header blocks as `paxHeader(info)` makes them, written at `buf[off, off + COMMON_HEADER_BYTES)`. Returns
 * false, having written nothing that counts, for any other member: `paxHeader` then does it.
 */
export function writeCommonHeader(buf: Buffer, off: number, info: MemberInfo): boolean {
  const { name, linkname, uname, gname, uid, gid, size, mtime, type } = info;
  if (name.length > LENGTH_NAME || linkname.length > LENGTH_LINK || uname.length > 32 || gname.length > 32) return false;
  if (type === CHRTYPE || type === BLKTYPE) return false;
  if (!(uid >= 0 && uid < MAX_ID && gid >= 0 && gid < MAX_ID && size >= 0 && size < MAX_NUMBER)) return false;
  const whole = roundHalfEven(mtime);
  if (!(whole >= 0 && whole < MAX_NUMBER)) return false;
  const record = paxRecord('mtime', floatRepr(mtime));
  // TypedArray's own fill and set: Buffer's checks its arguments in JavaScript, a measurable cost per member
  Uint8Array.prototype.fill.call(buf, 0, off, off + COMMON_HEADER_BYTES);

  // the ustar block first: a name that is not ASCII gives up before anything else is written
  const u = off + 2 * BLOCKSIZE;
  const n1 = putAscii(buf, u, name);
  const n2 = putAscii(buf, u + 157, linkname);
  const n3 = putAscii(buf, u + 265, uname);
  const n4 = putAscii(buf, u + 297, gname);
  if (n1 < 0 || n2 < 0 || n3 < 0 || n4 < 0) return false;
  let sum = ASCII_SPACE_SUM + n1 + n2 + n3 + n4;
  sum += putOctal(buf, u + 100, 7, info.mode & 0o7777);
  sum += putOctal(buf, u + 108, 7, uid);
  sum += putOctal(buf, u + 116, 7, gid);
  sum += putOctal(buf, u + 124, 11, size);
  sum += putOctal(buf, u + 136, 11, whole);
  Uint8Array.prototype.fill.call(buf, 0x20, u + 148, u + 156);
  sum += putAscii(buf, u + 156, type);
  sum += putAscii(buf, u + 257, MAGIC);
  putChecksum(buf, u, sum);

  // the PAX header block and its record
  buf.set(PAX_TEMPLATE, off);
  putChecksum(buf, off, PAX_TEMPLATE_SUM + putOctal(buf, off + 124, 11, record.length));
  putAscii(buf, off + BLOCKSIZE, record);
  return true;
}

/** "len key=value\n" for an ASCII value; len counts itself (tarfile's loop). */
function paxRecord(key: string, value: string): string {
  const l = key.length + value.length + 3;
  let p = 0;
  for (;;) {
    const n = l + String(p).length;
    if (n === p) break;
    p = n;
  }
  return `${p} ${key}=${value}\n`;
}

/** repr(float): JavaScript's shortest digits are Python's; between 1e-4 and 1e16 both print no exponent. */
function floatRepr(x: number): string {
  if (x >= 1e-4 && x < 1e16) {
    const s = String(x);
    return s.includes('.') ? s : `${s}.0`;
  }
  return pyFloatRepr(x);
}

/** Writes an ASCII string; returns the sum of its bytes, or -1 at the first character that is not ASCII. */
function putAscii(buf: Buffer, off: number, s: string): number {
  let sum = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    buf[off + i] = c;
    sum += c;
  }
  return sum;
}

/** itn: `digits` octal digits and a NUL (the caller checked the range); returns the digits' byte sum. */
function putOctal(buf: Buffer, off: number, digits: number, v: number): number {
  let sum = 0;
  for (let i = digits - 1; i >= 0; i--) {
    const d = v % 8;
    buf[off + i] = 0x30 + d;
    sum += 0x30 + d;
    v = (v - d) / 8;
  }
  buf[off + digits] = 0;
  return sum;
}

/** "%06o\0" at offset 148 of the block; the eighth byte of the field stays a space. */
function putChecksum(buf: Buffer, block: number, sum: number): void {
  putOctal(buf, block + 148, 6, sum);
}

/** The checksum of a finished block, its checksum field counted as spaces. */
function blockSum(b: Buffer): number {
  let sum = ASCII_SPACE_SUM;
  for (let i = 0; i < BLOCKSIZE; i++) if (i < 148 || i >= 156) sum += b[i]!;
  return sum;
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
  const header = ustarBlock(paxHeaderFields(data.length));
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
