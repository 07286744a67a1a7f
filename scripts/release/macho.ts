// Offline Mach-O code signing for the darwin binaries, so they can be built on Linux: remove the official
// signature before injection (what `codesign --remove-signature` does), then write an ad-hoc signature (what
// `codesign --sign -` does: a CodeDirectory of SHA-256 page hashes, empty requirements, an empty CMS blob).
// Apple Silicon refuses to run unsigned arm64 code; an ad-hoc signature is enough for a binary that is not
// quarantined. Also a parser and verifier used by the structural checks. 64-bit little-endian Mach-O only.

import { createHash } from 'node:crypto';

const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const HEADER_SIZE = 32;
const CPU_TYPE_ARM64 = 0x0100000c;

const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSMAGIC_REQUIREMENTS = 0xfade0c01;
const CSMAGIC_BLOBWRAPPER = 0xfade0b01;
const CSSLOT_CODEDIRECTORY = 0;
const CSSLOT_REQUIREMENTS = 2;
const CSSLOT_SIGNATURESLOT = 0x10000;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CD_VERSION = 0x20400; // with exec segment fields
const CD_HEADER_SIZE = 88;
const CS_HASHTYPE_SHA256 = 2;
const CS_PAGE_SHIFT = 12; // codesign hashes 4 KiB pages on every architecture
const CS_PAGE = 1 << CS_PAGE_SHIFT;

export class MachOError extends Error {
  override name = 'MachOError';
}

export interface Section {
  sectname: string;
  segname: string;
  size: number;
  offset: number;
}

export interface Segment {
  /** Offset of the load command in the file. */
  at: number;
  segname: string;
  vmsize: number;
  fileoff: number;
  filesize: number;
  sections: Section[];
}

export interface MachO {
  cputype: number;
  ncmds: number;
  sizeofcmds: number;
  segments: Segment[];
  /** The LC_CODE_SIGNATURE command, if any. */
  codeSignature?: { at: number; dataoff: number; datasize: number };
  /** Lowest file offset of any section's data: load commands must end before it. */
  firstSectionOffset: number;
}

function cstr(buf: Buffer, start: number, len: number): string {
  const raw = buf.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? len : nul).toString('latin1');
}

export function parseMachO(buf: Buffer): MachO {
  if (buf.length < HEADER_SIZE || buf.readUInt32LE(0) !== MH_MAGIC_64) throw new MachOError('not a 64-bit little-endian Mach-O file');
  const cputype = buf.readUInt32LE(4);
  const ncmds = buf.readUInt32LE(16);
  const sizeofcmds = buf.readUInt32LE(20);
  const segments: Segment[] = [];
  let codeSignature: MachO['codeSignature'];
  let firstSectionOffset = buf.length;
  let at = HEADER_SIZE;
  for (let i = 0; i < ncmds; i++) {
    if (at + 8 > HEADER_SIZE + sizeofcmds) throw new MachOError(`load command ${i} runs past sizeofcmds`);
    const cmd = buf.readUInt32LE(at);
    const cmdsize = buf.readUInt32LE(at + 4);
    if (cmdsize < 8 || at + cmdsize > HEADER_SIZE + sizeofcmds) throw new MachOError(`load command ${i} has a bad size ${cmdsize}`);
    if (cmd === LC_SEGMENT_64) {
      const nsects = buf.readUInt32LE(at + 64);
      const seg: Segment = {
        at,
        segname: cstr(buf, at + 8, 16),
        vmsize: Number(buf.readBigUInt64LE(at + 32)),
        fileoff: Number(buf.readBigUInt64LE(at + 40)),
        filesize: Number(buf.readBigUInt64LE(at + 48)),
        sections: [],
      };
      for (let s = 0; s < nsects; s++) {
        const o = at + 72 + s * 80;
        const sec: Section = {
          sectname: cstr(buf, o, 16),
          segname: cstr(buf, o + 16, 16),
          size: Number(buf.readBigUInt64LE(o + 40)),
          offset: buf.readUInt32LE(o + 48),
        };
        seg.sections.push(sec);
        if (sec.offset > 0 && sec.size > 0) firstSectionOffset = Math.min(firstSectionOffset, sec.offset);
      }
      segments.push(seg);
    } else if (cmd === LC_CODE_SIGNATURE) {
      codeSignature = { at, dataoff: buf.readUInt32LE(at + 8), datasize: buf.readUInt32LE(at + 12) };
    }
    at += cmdsize;
  }
  return { cputype, ncmds, sizeofcmds, segments, ...(codeSignature ? { codeSignature } : {}), firstSectionOffset };
}

function linkedit(m: MachO): Segment {
  const seg = m.segments.find((s) => s.segname === '__LINKEDIT');
  if (!seg) throw new MachOError('no __LINKEDIT segment');
  return seg;
}

function vmPage(m: MachO): number {
  return m.cputype === CPU_TYPE_ARM64 ? 0x4000 : 0x1000;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function setLinkedit(buf: Buffer, m: MachO, seg: Segment, filesize: number): void {
  buf.writeBigUInt64LE(BigInt(filesize), seg.at + 48);
  buf.writeBigUInt64LE(BigInt(alignUp(filesize, vmPage(m))), seg.at + 32);
}

/** The file without its code signature (a copy); unchanged when it has none. */
export function removeSignature(input: Buffer): Buffer {
  const m = parseMachO(input);
  const sig = m.codeSignature;
  if (!sig) return input;
  const seg = linkedit(m);
  if (seg.fileoff + seg.filesize < sig.dataoff + sig.datasize) throw new MachOError('the code signature is not inside __LINKEDIT');
  const buf = Buffer.from(input.subarray(0, sig.dataoff));
  // Drop the 16-byte load command: shift the following commands up and clear the freed tail.
  const end = HEADER_SIZE + m.sizeofcmds;
  buf.copy(buf, sig.at, sig.at + 16, end);
  buf.fill(0, end - 16, end);
  buf.writeUInt32LE(m.ncmds - 1, 16);
  buf.writeUInt32LE(m.sizeofcmds - 16, 20);
  const after = parseMachO(buf);
  setLinkedit(buf, after, linkedit(after), sig.dataoff - seg.fileoff);
  return buf;
}

interface BlobEntry {
  type: number;
  data: Buffer;
}

function superBlob(entries: BlobEntry[]): Buffer {
  const headerLen = 12 + entries.length * 8;
  const total = headerLen + entries.reduce((n, e) => n + e.data.length, 0);
  const out = Buffer.alloc(total);
  out.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, 0);
  out.writeUInt32BE(total, 4);
  out.writeUInt32BE(entries.length, 8);
  let off = headerLen;
  entries.forEach((e, i) => {
    out.writeUInt32BE(e.type, 12 + i * 8);
    out.writeUInt32BE(off, 16 + i * 8);
    e.data.copy(out, off);
    off += e.data.length;
  });
  return out;
}

function emptyRequirements(): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(CSMAGIC_REQUIREMENTS, 0);
  b.writeUInt32BE(12, 4);
  b.writeUInt32BE(0, 8);
  return b;
}

function emptyCms(): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(CSMAGIC_BLOBWRAPPER, 0);
  b.writeUInt32BE(8, 4);
  return b;
}

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

function codeDirectoryLength(identifier: string, codeLimit: number): number {
  return CD_HEADER_SIZE + Buffer.byteLength(identifier) + 1 + 2 * 32 + Math.ceil(codeLimit / CS_PAGE) * 32;
}

/** An ad-hoc signed copy of an unsigned Mach-O executable; `identifier` names the code (e.g. the file name). */
export function adhocSign(input: Buffer, identifier: string): Buffer {
  const m = parseMachO(input);
  if (m.codeSignature) throw new MachOError('already signed: remove the signature first');
  const seg = linkedit(m);
  if (seg.fileoff + seg.filesize !== input.length) throw new MachOError('__LINKEDIT is not at the end of the file');
  const text = m.segments.find((s) => s.segname === '__TEXT');
  if (!text) throw new MachOError('no __TEXT segment');
  const cmdEnd = HEADER_SIZE + m.sizeofcmds;
  if (cmdEnd + 16 > m.firstSectionOffset) throw new MachOError('no room for LC_CODE_SIGNATURE after the load commands');

  const codeLimit = alignUp(input.length, 16);
  const requirements = emptyRequirements();
  const cms = emptyCms();
  const cdLen = codeDirectoryLength(identifier, codeLimit);
  const sigSize = alignUp(12 + 3 * 8 + cdLen + requirements.length + cms.length, 16);

  const buf = Buffer.alloc(codeLimit + sigSize);
  input.copy(buf);
  // The load command and the new __LINKEDIT size are part of the hashed first page: write them first.
  buf.writeUInt32LE(LC_CODE_SIGNATURE, cmdEnd);
  buf.writeUInt32LE(16, cmdEnd + 4);
  buf.writeUInt32LE(codeLimit, cmdEnd + 8);
  buf.writeUInt32LE(sigSize, cmdEnd + 12);
  buf.writeUInt32LE(m.ncmds + 1, 16);
  buf.writeUInt32LE(m.sizeofcmds + 16, 20);
  setLinkedit(buf, m, seg, codeLimit + sigSize - seg.fileoff);

  const ident = Buffer.from(`${identifier}\0`, 'utf8');
  const nCodeSlots = Math.ceil(codeLimit / CS_PAGE);
  const cd = Buffer.alloc(cdLen);
  const identOffset = CD_HEADER_SIZE;
  const hashOffset = identOffset + ident.length + 2 * 32;
  cd.writeUInt32BE(CSMAGIC_CODEDIRECTORY, 0);
  cd.writeUInt32BE(cdLen, 4);
  cd.writeUInt32BE(CD_VERSION, 8);
  cd.writeUInt32BE(CS_ADHOC, 12);
  cd.writeUInt32BE(hashOffset, 16);
  cd.writeUInt32BE(identOffset, 20);
  cd.writeUInt32BE(2, 24); // special slots: -1 Info.plist (none), -2 requirements
  cd.writeUInt32BE(nCodeSlots, 28);
  cd.writeUInt32BE(codeLimit, 32);
  cd.writeUInt8(32, 36); // hashSize
  cd.writeUInt8(CS_HASHTYPE_SHA256, 37);
  cd.writeUInt8(0, 38); // platform
  cd.writeUInt8(CS_PAGE_SHIFT, 39);
  // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: all 0
  cd.writeBigUInt64BE(BigInt(text.fileoff), 64); // execSegBase
  cd.writeBigUInt64BE(BigInt(text.filesize), 72); // execSegLimit
  cd.writeBigUInt64BE(BigInt(CS_EXECSEG_MAIN_BINARY), 80);
  ident.copy(cd, identOffset);
  sha256(requirements).copy(cd, hashOffset - 2 * 32); // slot -2
  for (let i = 0; i < nCodeSlots; i++) {
    sha256(buf.subarray(i * CS_PAGE, Math.min((i + 1) * CS_PAGE, codeLimit))).copy(cd, hashOffset + i * 32);
  }
  superBlob([
    { type: CSSLOT_CODEDIRECTORY, data: cd },
    { type: CSSLOT_REQUIREMENTS, data: requirements },
    { type: CSSLOT_SIGNATURESLOT, data: cms },
  ]).copy(buf, codeLimit);
  return buf;
}

export interface SignatureInfo {
  identifier: string;
  flags: number;
  codeLimit: number;
  pages: number;
  adhoc: boolean;
}

/** Checks the embedded signature's structure and every page hash; throws MachOError on any mismatch. */
export function verifySignature(buf: Buffer): SignatureInfo {
  const m = parseMachO(buf);
  const sig = m.codeSignature;
  if (!sig) throw new MachOError('no LC_CODE_SIGNATURE');
  const seg = linkedit(m);
  if (sig.dataoff + sig.datasize > seg.fileoff + seg.filesize || sig.dataoff + sig.datasize > buf.length) {
    throw new MachOError('the signature lies outside __LINKEDIT or the file');
  }
  const blob = buf.subarray(sig.dataoff, sig.dataoff + sig.datasize);
  if (blob.readUInt32BE(0) !== CSMAGIC_EMBEDDED_SIGNATURE) throw new MachOError('signature is not an embedded-signature superblob');
  const count = blob.readUInt32BE(8);
  let cd: Buffer | undefined;
  let req: Buffer | undefined;
  for (let i = 0; i < count; i++) {
    const type = blob.readUInt32BE(12 + i * 8);
    const off = blob.readUInt32BE(16 + i * 8);
    const len = blob.readUInt32BE(off + 4);
    if (type === CSSLOT_CODEDIRECTORY) cd = blob.subarray(off, off + len);
    if (type === CSSLOT_REQUIREMENTS) req = blob.subarray(off, off + len);
  }
  if (!cd || cd.readUInt32BE(0) !== CSMAGIC_CODEDIRECTORY) throw new MachOError('no CodeDirectory');
  const hashOffset = cd.readUInt32BE(16);
  const identOffset = cd.readUInt32BE(20);
  const nSpecial = cd.readUInt32BE(24);
  const nCode = cd.readUInt32BE(28);
  const codeLimit = cd.readUInt32BE(32);
  const hashSize = cd.readUInt8(36);
  const hashType = cd.readUInt8(37);
  const pageSize = 1 << cd.readUInt8(39);
  if (hashSize !== 32 || hashType !== CS_HASHTYPE_SHA256) throw new MachOError(`unsupported hash (size ${hashSize}, type ${hashType})`);
  if (codeLimit !== sig.dataoff) throw new MachOError(`codeLimit ${codeLimit} is not the signature offset ${sig.dataoff}`);
  if (nCode !== Math.ceil(codeLimit / pageSize)) throw new MachOError(`${nCode} code slots for ${codeLimit} bytes`);
  for (let i = 0; i < nCode; i++) {
    const want = cd.subarray(hashOffset + i * 32, hashOffset + (i + 1) * 32);
    const got = sha256(buf.subarray(i * pageSize, Math.min((i + 1) * pageSize, codeLimit)));
    if (!got.equals(want)) throw new MachOError(`page ${i} hash mismatch`);
  }
  if (req && nSpecial >= 2 && !sha256(req).equals(cd.subarray(hashOffset - 64, hashOffset - 32))) {
    throw new MachOError('requirements hash mismatch');
  }
  const flags = cd.readUInt32BE(12);
  return { identifier: cstr(cd, identOffset, cd.length - identOffset), flags, codeLimit, pages: nCode, adhoc: (flags & CS_ADHOC) !== 0 };
}
