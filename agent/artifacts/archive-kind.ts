// Which kind of archive a file is, from its first bytes (magic numbers), never from its name alone: a download's
// name often lies (`build.zip?token=…`, `latest`, a `.tgz` that is really a plain tar).

import { open } from 'node:fs/promises';
import { AgentError } from '../errors.js';

export type ArchiveFormat = 'tar' | 'tar.gz' | 'tar.bz2' | 'tar.xz' | 'tar.zst' | 'zip';

/** Bytes read to decide: a tar header is one 512-byte block. */
const SNIFF_BYTES = 512;

const MAGIC: [ArchiveFormat, number[]][] = [
  ['tar.gz', [0x1f, 0x8b]],
  ['tar.bz2', [0x42, 0x5a, 0x68]], // "BZh"
  ['tar.xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['tar.zst', [0x28, 0xb5, 0x2f, 0xfd]],
  ['zip', [0x50, 0x4b, 0x03, 0x04]], // a local file header
  ['zip', [0x50, 0x4b, 0x05, 0x06]], // an empty zip: only the end of central directory
];

function startsWith(head: Buffer, magic: number[]): boolean {
  return head.length >= magic.length && magic.every((b, i) => head[i] === b);
}

/** A tar header block: "ustar" at 257 (POSIX and GNU), or an old v7 header whose checksum adds up. */
export function looksLikeTar(block: Buffer): boolean {
  if (block.length < SNIFF_BYTES) return false;
  if (block.toString('latin1', 257, 262) === 'ustar') return true;
  const stored = parseInt(
    block
      .toString('latin1', 148, 156)
      .replace(/[\0 ]+$/, '')
      .trim(),
    8,
  );
  if (!Number.isFinite(stored)) return false;
  let sum = 0;
  for (let i = 0; i < SNIFF_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
  return sum === stored && block[0] !== 0;
}

/** The format of the bytes `head` (the start of a file), or null. */
export function formatOf(head: Buffer): ArchiveFormat | null {
  for (const [format, magic] of MAGIC) if (startsWith(head, magic)) return format;
  if (looksLikeTar(head)) return 'tar';
  // an empty tar (`tar cf x.tar -T /dev/null`) is only zero blocks
  if (head.length >= SNIFF_BYTES && head.subarray(0, SNIFF_BYTES).every((b) => b === 0)) return 'tar';
  return null;
}

/** Reads the start of `archivePath` and names its format; E_EXTRACT_FORMAT when it is none we extract. */
export async function detectFormat(archivePath: string): Promise<ArchiveFormat> {
  let head: Buffer;
  try {
    const fh = await open(archivePath, 'r');
    try {
      const buf = Buffer.alloc(SNIFF_BYTES);
      const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new AgentError('E_EXTRACT_IO', `${archivePath}: cannot read the archive: ${e.code ?? e.message}`);
  }
  const format = formatOf(head);
  if (!format) {
    const hex = head.subarray(0, 8).toString('hex');
    throw new AgentError(
      'E_EXTRACT_FORMAT',
      `${archivePath}: not an archive we can extract (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip); it starts with ${hex || 'nothing'}`,
    );
  }
  return format;
}
