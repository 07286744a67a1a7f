// Reads a zip with yauzl (central directory first, sizes validated) and hands each entry to the TreeWriter.
// Names are decoded here and checked by the writer with the rules tar members get. yauzl does
// not check CRC-32, so the data is checked here while it streams (zlib.crc32, Node >= 20.15).
//
// Unix zips (Info-ZIP `zip`, "version made by" 3) carry the mode in the high 16 bits of the external attributes:
// symlinks (stored as their target text), directories, files with their permission bits, devices (skipped).
// Other zips get 0o644 for files and 0o755 for directories; a name ending in `/` is a directory.

import { crc32 } from 'node:zlib';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { AgentError, errorMessage } from '../errors.js';
import type { MemberMeta, TreeWriter } from './extract-writer.js';

/** A symlink's target is a path: anything longer is not one. */
const MAX_LINK_TARGET = 64 * 1024;
const MADE_BY_UNIX = 3;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const SKIPPED_KINDS = new Map([
  [0o020000, 'a character device'],
  [0o060000, 'a block device'],
  [0o010000, 'a FIFO'],
  [0o140000, 'a socket'],
]);

const openZip = promisify<string, yauzl.Options, ZipFile>(yauzl.open);

/** The Unix mode of `entry`, or 0 when the zip was not made on Unix. */
function unixMode(entry: Entry): number {
  return entry.versionMadeBy >> 8 === MADE_BY_UNIX ? entry.externalFileAttributes >>> 16 : 0;
}

function corrupt(archive: string, err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  return new AgentError('E_EXTRACT_CORRUPT', `${archive}: corrupt or truncated zip: ${errorMessage(err)}`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The entry's name: UTF-8 when flagged (bit 11) or given in Info-ZIP's Unicode Path field (yauzl reads both);
 * otherwise the raw bytes as UTF-8 when they are valid UTF-8 (Info-ZIP on Unix stores the file system's bytes
 * without the flag), else CP437 as the spec says. The name is checked by the writer, not by yauzl.
 */
function entryName(entry: Entry): string {
  const raw = entry.fileNameRaw;
  const flagged = (entry.generalPurposeBitFlag & 0x800) !== 0 || entry.extraFields.some((f) => f.id === 0x7075);
  if (!flagged && raw.some((b) => b >= 0x80)) {
    try {
      return strictUtf8.decode(raw);
    } catch {
      // not UTF-8: CP437 below
    }
  }
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
}

/** The entries of `zip`, one at a time (lazyEntries). */
async function* entriesOf(zip: ZipFile): AsyncGenerator<Entry> {
  for (;;) {
    const next = new Promise<Entry | null>((resolve, reject) => {
      const onEntry = (e: Entry): void => done(() => resolve(e));
      const onEnd = (): void => done(() => resolve(null));
      const onError = (err: Error): void => done(() => reject(err));
      const done = (then: () => void): void => {
        zip.off('entry', onEntry).off('end', onEnd).off('error', onError);
        then();
      };
      zip.on('entry', onEntry).on('end', onEnd).on('error', onError);
    });
    zip.readEntry();
    const entry = await next;
    if (!entry) return;
    yield entry;
  }
}

/** The data of `entry`, with its CRC-32 checked at the end. */
async function* checkedData(zip: ZipFile, entry: Entry, name: string, w: TreeWriter): AsyncGenerator<Buffer> {
  if (entry.isEncrypted()) throw w.refuse(name, 'encrypted zip entries are not supported', 'E_EXTRACT_UNSUPPORTED');
  if (!entry.canDecodeFileData()) throw w.refuse(name, `zip compression method ${entry.compressionMethod} is not supported`, 'E_EXTRACT_UNSUPPORTED');
  const stream = await promisify<Entry, Readable>(zip.openReadStream.bind(zip))(entry);
  let crc = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      crc = crc32(chunk, crc);
      yield chunk;
    }
  } finally {
    stream.destroy();
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) {
    throw new AgentError('E_EXTRACT_CORRUPT', `${w.archiveName}: member '${name}' fails its CRC-32 check (the zip is corrupt)`);
  }
}

async function linkTarget(zip: ZipFile, entry: Entry, name: string, w: TreeWriter): Promise<string> {
  if (entry.uncompressedSize > MAX_LINK_TARGET) throw w.refuse(name, `symlink target longer than ${MAX_LINK_TARGET} bytes`);
  const chunks: Buffer[] = [];
  for await (const chunk of checkedData(zip, entry, name, w)) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function writeEntry(zip: ZipFile, entry: Entry, w: TreeWriter): Promise<void> {
  const mode = unixMode(entry);
  const kind = mode & S_IFMT;
  const name = entryName(entry);
  const meta: MemberMeta = { name, mtime: entry.getLastModDate() };
  if (mode & 0o777) meta.mode = mode & 0o7777;
  if (/[\\/]$/.test(name) || kind === S_IFDIR) return w.dir(meta);
  if (kind === S_IFLNK) return w.symlink(meta, await linkTarget(zip, entry, name, w));
  const skipped = SKIPPED_KINDS.get(kind);
  if (skipped) return w.skip(name, skipped);
  if (kind !== 0 && kind !== S_IFREG) throw w.refuse(name, `unknown file type 0o${kind.toString(8)}`, 'E_EXTRACT_UNSUPPORTED');
  return w.file(meta, entry.uncompressedSize, checkedData(zip, entry, name, w));
}

/** Extracts the zip at `archivePath` through `w`. */
export async function extractZip(archivePath: string, w: TreeWriter, signal?: AbortSignal): Promise<void> {
  let zip: ZipFile;
  try {
    zip = await openZip(archivePath, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    throw corrupt(archivePath, err);
  }
  try {
    for await (const entry of entriesOf(zip)) {
      signal?.throwIfAborted();
      await writeEntry(zip, entry, w);
    }
  } catch (err) {
    throw corrupt(archivePath, err);
  } finally {
    zip.close();
  }
}
