// Structural checks of a built single executable, for the targets this machine cannot run: the format parses
// for the right CPU, the SEA fuse is flipped, the blob is where Node looks for it (byte-identical), and the
// signature state is what the release needs (Mach-O: valid ad-hoc signature; PE: no stale Authenticode).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { which } from './tools.js';
import { MachOError, parseMachO, verifySignature } from './macho.js';
import { IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64, findRcdata, parsePe } from './pe.js';
import { SEA_FUSE, SEA_MACHO_SEGMENT, SEA_RESOURCE, type Target } from './targets.js';

export class CheckError extends Error {
  override name = 'CheckError';
}

const ELF_MACHINE: Record<Target['arch'], number> = { x64: 0x3e, arm64: 0xb7 };
const MACHO_CPU: Record<Target['arch'], number> = { x64: 0x01000007, arm64: 0x0100000c };
const PE_MACHINE: Record<Target['arch'], number> = { x64: IMAGE_FILE_MACHINE_AMD64, arm64: IMAGE_FILE_MACHINE_ARM64 };

function count(buf: Buffer, needle: string): number {
  const n = Buffer.from(needle, 'latin1');
  let c = 0;
  for (let i = buf.indexOf(n); i >= 0; i = buf.indexOf(n, i + 1)) c++;
  return c;
}

/** Throws CheckError on the first problem; returns one line per check passed. */
export function checkBinary(file: string, t: Target, blob?: Buffer): string[] {
  const buf = readFileSync(file);
  const ok: string[] = [];
  const fail = (what: string): never => {
    throw new CheckError(`${file}: ${what}`);
  };

  if (count(buf, `${SEA_FUSE}:1`) !== 1 || count(buf, `${SEA_FUSE}:0`) !== 0) fail('the SEA fuse is not flipped (exactly one ":1" expected)');
  ok.push('SEA fuse flipped');

  let embedded: Buffer | undefined;
  if (t.os === 'linux') {
    if (buf.readUInt32BE(0) !== 0x7f454c46) fail('not an ELF file');
    if (buf.readUInt8(4) !== 2) fail('not a 64-bit ELF');
    const machine = buf.readUInt16LE(18);
    if (machine !== ELF_MACHINE[t.arch]) fail(`ELF machine 0x${machine.toString(16)}, expected 0x${ELF_MACHINE[t.arch].toString(16)}`);
    ok.push(`ELF64 ${t.arch}`);
    if (count(buf, SEA_RESOURCE) < 1) fail(`no ${SEA_RESOURCE} note`);
    if (blob && buf.indexOf(blob) < 0) fail('the blob is not embedded byte for byte');
    embedded = blob;
  } else if (t.os === 'win32') {
    const pe = parsePe(buf);
    if (pe.machine !== PE_MACHINE[t.arch]) fail(`PE machine 0x${pe.machine.toString(16)}`);
    if (pe.subsystem !== 3) fail(`PE subsystem ${pe.subsystem}, expected 3 (console)`);
    ok.push(`PE32+ ${t.arch} console, ${pe.sections.length} sections`);
    if (pe.certificateTable.size !== 0) fail('still carries an Authenticode certificate table (invalid after injection)');
    ok.push('no stale Authenticode signature');
    embedded = findRcdata(buf, pe, SEA_RESOURCE);
    if (!embedded) fail(`no RT_RCDATA resource ${SEA_RESOURCE}`);
  } else {
    const m = parseMachO(buf);
    if (m.cputype !== MACHO_CPU[t.arch]) fail(`Mach-O CPU type 0x${m.cputype.toString(16)}`);
    ok.push(`Mach-O 64 ${t.arch}, ${m.ncmds} load commands`);
    const seg = m.segments.find((s) => s.segname === SEA_MACHO_SEGMENT);
    const sec = seg?.sections.find((s) => s.sectname === `__${SEA_RESOURCE}`);
    if (!seg || !sec) fail(`no ${SEA_MACHO_SEGMENT},__${SEA_RESOURCE} section`);
    embedded = buf.subarray(sec!.offset, sec!.offset + sec!.size);
    try {
      const info = verifySignature(buf);
      if (!info.adhoc) fail('signature is not ad-hoc');
      ok.push(`ad-hoc signature valid (${info.pages} page hashes, identifier ${info.identifier})`);
    } catch (err) {
      if (err instanceof MachOError) fail(`signature: ${err.message}`);
      throw err;
    }
  }
  if (blob && embedded && !embedded.subarray(0, blob.length).equals(blob)) fail('the embedded blob differs from the one built');
  if (blob) ok.push(`blob embedded (${blob.length} bytes)`);
  const second = llvmCheck(file, t, blob?.length);
  if (second) ok.push(second);
  return ok;
}

/**
 * A second opinion from an independent parser where LLVM's tools are installed (Debian llvm): llvm-objdump
 * must list the NODE_SEA segment and the code signature of a Mach-O, llvm-readobj the RCDATA blob of a PE.
 */
function llvmCheck(file: string, t: Target, blobSize: number | undefined): string | undefined {
  const tool = t.os === 'darwin' ? which('llvm-objdump') : t.os === 'win32' ? which('llvm-readobj') : undefined;
  if (!tool) return undefined;
  const out = (args: string[]): string => execFileSync(tool, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  if (t.os === 'darwin') {
    const headers = out(['--macho', '--private-headers', file]);
    if (!/segname NODE_SEA\b/.test(headers) || !/sectname __NODE_SEA_BLOB\b/.test(headers))
      throw new CheckError(`${file}: llvm-objdump sees no NODE_SEA segment`);
    if (!/cmd LC_CODE_SIGNATURE\b/.test(headers)) throw new CheckError(`${file}: llvm-objdump sees no LC_CODE_SIGNATURE`);
    return 'llvm-objdump agrees (NODE_SEA segment, LC_CODE_SIGNATURE)';
  }
  const resources = out(['--coff-resources', file]);
  const m = /Name: NODE_SEA_BLOB \[[^]*?DataSize: (\d+)/.exec(resources);
  if (!m) throw new CheckError(`${file}: llvm-readobj sees no NODE_SEA_BLOB resource`);
  if (blobSize !== undefined && Number(m[1]) !== blobSize) throw new CheckError(`${file}: llvm-readobj: NODE_SEA_BLOB is ${m[1]} bytes, expected ${blobSize}`);
  return `llvm-readobj agrees (RCDATA NODE_SEA_BLOB, ${m[1]} bytes)`;
}
