// The offline Mach-O signer of scripts/release/build-binaries on a small synthetic executable: an ad-hoc signature
// verifies page by page, any changed byte breaks it, and removing it gives back the unsigned file.
import { describe, expect, it } from 'vitest';
import { MachOError, adhocSign, parseMachO, removeSignature, verifySignature } from './macho.js';

/** A minimal 64-bit x86_64 Mach-O: __TEXT (one __text section) and __LINKEDIT at the end of the file. */
function syntheticMachO(): Buffer {
  const size = 0x2100;
  const b = Buffer.alloc(size);
  const cmds = 72 + 80 + 72;
  b.writeUInt32LE(0xfeedfacf, 0);
  b.writeUInt32LE(0x01000007, 4); // CPU_TYPE_X86_64
  b.writeUInt32LE(3, 8);
  b.writeUInt32LE(2, 12); // MH_EXECUTE
  b.writeUInt32LE(2, 16); // ncmds
  b.writeUInt32LE(cmds, 20);
  const seg = (at: number, name: string, vmaddr: number, vmsize: number, fileoff: number, filesize: number, nsects: number): void => {
    b.writeUInt32LE(0x19, at);
    b.writeUInt32LE(72 + nsects * 80, at + 4);
    b.write(name, at + 8, 'latin1');
    b.writeBigUInt64LE(BigInt(vmaddr), at + 24);
    b.writeBigUInt64LE(BigInt(vmsize), at + 32);
    b.writeBigUInt64LE(BigInt(fileoff), at + 40);
    b.writeBigUInt64LE(BigInt(filesize), at + 48);
    b.writeUInt32LE(nsects, at + 64);
  };
  seg(32, '__TEXT', 0x100000000, 0x2000, 0, 0x2000, 1);
  const sect = 32 + 72;
  b.write('__text', sect, 'latin1');
  b.write('__TEXT', sect + 16, 'latin1');
  b.writeBigUInt64LE(0x100001000n, sect + 32);
  b.writeBigUInt64LE(0x100n, sect + 40);
  b.writeUInt32LE(0x1000, sect + 48);
  seg(sect + 80, '__LINKEDIT', 0x100002000, 0x1000, 0x2000, 0x100, 0);
  for (let i = 0x1000; i < size; i++) b[i] = (i * 7) & 0xff; // "code"
  return b;
}

describe('Mach-O ad-hoc signing', () => {
  it('signs so that every page hash verifies', () => {
    const signed = adhocSign(syntheticMachO(), 'bbagent-test');
    const info = verifySignature(signed);
    expect(info).toMatchObject({ identifier: 'bbagent-test', adhoc: true, pages: 3 });
    const m = parseMachO(signed);
    expect(m.ncmds).toBe(3);
    const linkedit = m.segments.find((s) => s.segname === '__LINKEDIT')!;
    expect(linkedit.fileoff + linkedit.filesize).toBe(signed.length); // the signature is inside __LINKEDIT
  });

  it('detects a changed byte', () => {
    const signed = adhocSign(syntheticMachO(), 'bbagent-test');
    signed.writeUInt8(signed.readUInt8(0x1800) ^ 1, 0x1800);
    expect(() => verifySignature(signed)).toThrow(/page 1 hash mismatch/);
  });

  it('removing the signature restores the unsigned file; signing twice is refused', () => {
    const original = syntheticMachO();
    const signed = adhocSign(original, 'x');
    expect(() => adhocSign(signed, 'x')).toThrow(MachOError);
    expect(removeSignature(signed).equals(original)).toBe(true);
    expect(() => verifySignature(original)).toThrow(/no LC_CODE_SIGNATURE/);
  });
});
