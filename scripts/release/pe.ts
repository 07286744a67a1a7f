// Just enough of the PE/COFF format to check a Windows single executable: machine, sections, the Authenticode
// certificate table, and the RT_RCDATA resource postject writes the SEA blob into.

export class PeError extends Error {
  override name = 'PeError';
}

export interface PeSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  rawSize: number;
  rawOffset: number;
}

export interface PeFile {
  machine: number;
  subsystem: number;
  sections: PeSection[];
  /** File offset and size of the Authenticode certificate table (0, 0 when unsigned). */
  certificateTable: { offset: number; size: number };
  resourceRva: number;
  resourceSize: number;
}

export const IMAGE_FILE_MACHINE_AMD64 = 0x8664;
export const IMAGE_FILE_MACHINE_ARM64 = 0xaa64;
const RT_RCDATA = 10;

export function parsePe(buf: Buffer): PeFile {
  if (buf.length < 0x40 || buf.toString('latin1', 0, 2) !== 'MZ') throw new PeError('no MZ header');
  const pe = buf.readUInt32LE(0x3c);
  if (buf.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new PeError('no PE signature');
  const coff = pe + 4;
  const machine = buf.readUInt16LE(coff);
  const nsections = buf.readUInt16LE(coff + 2);
  const optSize = buf.readUInt16LE(coff + 16);
  const opt = coff + 20;
  if (buf.readUInt16LE(opt) !== 0x20b) throw new PeError('not PE32+ (64-bit)');
  const subsystem = buf.readUInt16LE(opt + 68);
  const dirs = opt + 112;
  const dir = (i: number): [number, number] => [buf.readUInt32LE(dirs + i * 8), buf.readUInt32LE(dirs + i * 8 + 4)];
  const [resourceRva, resourceSize] = dir(2);
  const [certOffset, certSize] = dir(4);
  const sections: PeSection[] = [];
  for (let i = 0; i < nsections; i++) {
    const s = opt + optSize + i * 40;
    sections.push({
      name: buf.toString('latin1', s, s + 8).replace(/\0+$/, ''),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      rawSize: buf.readUInt32LE(s + 16),
      rawOffset: buf.readUInt32LE(s + 20),
    });
  }
  return { machine, subsystem, sections, certificateTable: { offset: certOffset, size: certSize }, resourceRva, resourceSize };
}

function rvaToOffset(pe: PeFile, rva: number): number {
  for (const s of pe.sections) {
    if (rva >= s.virtualAddress && rva < s.virtualAddress + Math.max(s.virtualSize, s.rawSize)) return rva - s.virtualAddress + s.rawOffset;
  }
  throw new PeError(`RVA 0x${rva.toString(16)} is in no section`);
}

/** The bytes of the RT_RCDATA resource called `name` (first language), or undefined. */
export function findRcdata(buf: Buffer, pe: PeFile, name: string): Buffer | undefined {
  if (pe.resourceRva === 0) return undefined;
  const base = rvaToOffset(pe, pe.resourceRva);
  const entries = (dirOff: number): { id: number | string; target: number; isDir: boolean }[] => {
    const at = base + dirOff;
    const count = buf.readUInt16LE(at + 12) + buf.readUInt16LE(at + 14);
    const out = [];
    for (let i = 0; i < count; i++) {
      const e = at + 16 + i * 8;
      const nameField = buf.readUInt32LE(e);
      const dataField = buf.readUInt32LE(e + 4);
      let id: number | string = nameField;
      if (nameField & 0x80000000) {
        const s = base + (nameField & 0x7fffffff);
        id = buf.toString('utf16le', s + 2, s + 2 + buf.readUInt16LE(s) * 2);
      }
      out.push({ id, target: dataField & 0x7fffffff, isDir: (dataField & 0x80000000) !== 0 });
    }
    return out;
  };
  const type = entries(0).find((e) => e.id === RT_RCDATA && e.isDir);
  if (!type) return undefined;
  const named = entries(type.target).find((e) => e.id === name && e.isDir);
  if (!named) return undefined;
  const lang = entries(named.target)[0];
  if (!lang || lang.isDir) return undefined;
  const dataEntry = base + lang.target;
  const rva = buf.readUInt32LE(dataEntry);
  const size = buf.readUInt32LE(dataEntry + 4);
  const off = rvaToOffset(pe, rva);
  return buf.subarray(off, off + size);
}
