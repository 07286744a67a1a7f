// Streaming tar writer for upload_directory: the same PAX archive Python 3.11's
// tarfile.open(mode='w'|'w|gz'|'w|bz2').add(path, '') produces, generated chunk by chunk (files of any size).
// This file walks the tree (TarFile.add, gettarinfo); headers, the chunk buffer, opening members and
// compression have their own files. The walk is synchronous, as tarfile's is: measured on 2,000 small files,
// awaiting each lstat/open/fstat/read/close (a thread-pool round trip each) cost three times the CPU of the
// calls themselves. The event loop gets a turn after each chunk.

import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { HostFacts, OwnerNames, ProcessControl } from '../../platforms/types.js';
import { PyError } from '../py/exceptions.js';
import { toPyError } from '../py/os-error.js';
import { fsPath, fsdecode } from '../py/fsencoding.js';
import { pathJoin } from '../py/os-path.js';
import { checkNul, timeFloat } from '../py/os.js';
import { bzip2Stream, gzipStream } from './tar-compress.js';
import { ArchiveBuffer } from './tar-buffer.js';
import type { BlockPool } from '../fs/block-reader.js';
import { closeQuietly, openMember } from './tar-file-data.js';
import {
  BLKTYPE,
  BLOCKSIZE,
  CHRTYPE,
  COMMON_HEADER_BYTES,
  DIRTYPE,
  FIFOTYPE,
  LNKTYPE,
  RECORDSIZE,
  REGTYPE,
  SYMTYPE,
  paxHeader,
  writeCommonHeader,
  type MemberInfo,
} from './tar-header.js';

/**
 * The archive's chunk size when the caller names none: the stream yields (and the event loop runs) once a chunk
 * is full, about 40 small members or 128 KiB of a large file, a millisecond or two of work.
 */
const DEFAULT_CHUNK_BYTES = 128 * 1024;

export type TarCompress = 'gz' | 'bz2' | null;

/** A tar archive as a sequence of byte chunks; `return()` stops it early and releases files / processes. */
export type TarStream = AsyncGenerator<Buffer, void, undefined>;

/**
 * What an archive needs of the OS: how it encodes device numbers and names owners (host facts), and where the
 * bzip2 program is (its program search).
 */
export type TarHost = Pick<HostFacts, 'deviceNumbers' | 'ownerNames'> & Pick<ProcessControl, 'findProgram'>;

export interface TarOptions {
  host: TarHost;
  /** The size of the chunks the stream yields (the last one is shorter); files are read into them directly. */
  chunkBytes?: number;
  /**
   * Where the plain archive's chunks come from; the caller gives back the ones yielded once done with them
   * (compressed archives yield the compressor's output instead, and take none back).
   */
  pool?: BlockPool;
  /** The worker's environment: PATH to find bzip2 in, and bzip2's environment. Default: process.env. */
  environ?: Record<string, string | undefined>;
}

export const BZIP2_MISSING = 'bz2 compression needs the bzip2 program on this worker';

/**
 * Starts the archive of `root` (stored as member '', its contents as relative members). Throws at once, before
 * any byte, when Python's tarfile would have failed at the root (FileNotFoundError etc.) or when bz2 is
 * requested and no bzip2 program is available. Any value of `compress` other than 'gz'/'bz2' means no
 * compression, as in buildbot-worker.
 */
export async function openTarStream(root: string, compress: string | null, opts: TarOptions): Promise<TarStream> {
  let rootStat: BigIntStats;
  try {
    rootStat = await lstat(fsPath(root), { bigint: true });
  } catch (err) {
    throw toPyError(err, root);
  }
  let bzip2: string | null = null;
  if (compress === 'bz2') {
    bzip2 = opts.host.findProgram('bzip2', opts.environ ?? process.env);
    if (!bzip2) throw new PyError('RuntimeError', BZIP2_MISSING, 'E_NO_BZIP2');
  }
  const tar = tarArchive(root, rootStat, opts);
  if (compress === 'gz') return gzipStream(tar);
  if (bzip2) return bzip2Stream(tar, bzip2, opts.environ ?? process.env);
  return tar;
}

// ---------------------------------------------------------------------------------------------------------
// The uncompressed archive

interface Writer {
  out: ArchiveBuffer;
  /** Regular files seen, by device then inode: their first arcname, for hard links. */
  inodes: Map<bigint, Map<bigint, string>>;
  owners: OwnerNames;
  host: TarHost;
}

/** A directory being walked: its sorted entries and the next one to add. */
interface DirFrame {
  name: string;
  arcname: string;
  entries: string[];
  next: number;
}

/** The plain tar stream (tarfile 'w' mode, PAX format), in chunks of `chunkBytes` (the last one shorter). */
export async function* tarArchive(root: string, rootStat: BigIntStats, opts: TarOptions): TarStream {
  const out = new ArchiveBuffer(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES, opts.pool);
  const w: Writer = { out, inodes: new Map(), owners: opts.host.ownerNames(), host: opts.host };
  // TarFile.add(name, arcname): the member, then (directories) its sorted entries, depth first. A stop
  // (return()) or an error leaves this loop, which closes the open file.
  const stack: DirFrame[] = [];
  let name = root;
  let arcname = '';
  let known: BigIntStats | undefined = rootStat;
  for (;;) {
    const st = known ?? lstatMember(name);
    const info = tarInfo(w, name, arcname, st);
    if (info) {
      // sockets and other unsupported types are skipped, as tarfile does
      writeHeader(out, info);
      if (info.type === REGTYPE) yield* memberData(out, name, st, info.size);
      else if (info.type === DIRTYPE) stack.push({ name, arcname, entries: sortedEntries(name), next: 0 });
    }
    while (out.ready.length > 0) yield out.ready.shift()!;
    let top = stack[stack.length - 1];
    while (top && top.next === top.entries.length) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (!top) break;
    const entry = top.entries[top.next++]!;
    name = pathJoin(top.name, entry);
    arcname = top.arcname ? pathJoin(top.arcname, entry) : entry;
    known = undefined;
  }
  // two zero blocks, then zero-fill to a whole record (like tar -b20)
  let end = BLOCKSIZE * 2;
  const rem = (out.offset + end) % RECORDSIZE;
  if (rem > 0) end += RECORDSIZE - rem;
  out.zeros(end);
  while (out.ready.length > 0) yield out.ready.shift()!;
  const last = out.finish();
  if (last) yield last;
}

function lstatMember(name: string): BigIntStats {
  try {
    return lstatSync(fsPath(name), { bigint: true });
  } catch (err) {
    throw toPyError(err, name);
  }
}

/** The member's header blocks, written in place when they are the common kind. */
function writeHeader(out: ArchiveBuffer, info: MemberInfo): void {
  const span = out.span(COMMON_HEADER_BYTES);
  if (span && writeCommonHeader(span[0], span[1], info)) out.advance(COMMON_HEADER_BYTES);
  else out.put(paxHeader(info));
}

/**
 * The file's bytes, exactly `size` of them, zero-padded to a whole block; a full chunk is yielded at once, so
 * a large file never sits in memory.
 */
function* memberData(out: ArchiveBuffer, name: string, st: BigIntStats, size: number): Generator<Buffer> {
  const fd = openMember(name, st);
  try {
    for (let left = size; left > 0;) {
      left -= out.read(fd, left, name);
      while (out.ready.length > 0) yield out.ready.shift()!;
    }
  } finally {
    closeQuietly(fd);
  }
  if (size % BLOCKSIZE) out.zeros(BLOCKSIZE - (size % BLOCKSIZE));
}

/** sorted(os.listdir(name)): the names surrogate-escaped where not UTF-8, in code point order. */
function sortedEntries(name: string): string[] {
  const names = listNames(name);
  // JavaScript's sort compares UTF-16 units, which is code point order unless a surrogate is involved
  if (names.some((n) => SURROGATE.test(n))) names.sort(compareCodePoints);
  else names.sort();
  return names;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** os.listdir(name): the entries' names (surrogate-escaped where not UTF-8); their order does not matter here. */
function listNames(name: string): string[] {
  try {
    checkNul(name);
    const path = fsPath(name);
    // names that are not UTF-8 come back with U+FFFD: those are listed again as bytes
    const names = readdirSync(path);
    if (!names.some((n) => n.includes('\uFFFD'))) return names;
    return (readdirSync(path, { encoding: 'buffer' }) as Buffer[]).map((b) => fsdecode(b));
  } catch (err) {
    throw toPyError(err, name);
  }
}

/** TarFile.gettarinfo: the member's header fields from lstat (links are stored, not followed). */
function tarInfo(w: Writer, name: string, arcname: string, st: BigIntStats): MemberInfo | null {
  let type: string;
  let linkname = '';
  if (st.isFile()) {
    let onDevice = w.inodes.get(st.dev);
    const first = onDevice?.get(st.ino);
    if (st.nlink > 1n && first !== undefined && arcname !== first) {
      // a hard link to a file already in the archive
      type = LNKTYPE;
      linkname = first;
    } else {
      type = REGTYPE;
      if (st.ino !== 0n) {
        if (!onDevice) w.inodes.set(st.dev, (onDevice = new Map()));
        onDevice.set(st.ino, arcname);
      }
    }
  } else if (st.isDirectory()) {
    type = DIRTYPE;
  } else if (st.isFIFO()) {
    type = FIFOTYPE;
  } else if (st.isSymbolicLink()) {
    type = SYMTYPE;
    try {
      linkname = fsdecode(readlinkSync(fsPath(name), { encoding: 'buffer' }));
    } catch (err) {
      throw toPyError(err, name);
    }
  } else if (st.isCharacterDevice()) {
    type = CHRTYPE;
  } else if (st.isBlockDevice()) {
    type = BLKTYPE;
  } else {
    return null;
  }
  const stripped = arcname.replace(/^\/+/, '');
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const [devmajor, devminor] = type === CHRTYPE || type === BLKTYPE ? w.host.deviceNumbers(st.rdev) : [0, 0];
  return {
    // arcname.lstrip('/'); a directory's name gets a trailing '/' (the root directory becomes '/')
    name: stripped + (type === DIRTYPE && !stripped.endsWith('/') ? '/' : ''),
    mode: Number(st.mode) & 0o7777,
    uid,
    gid,
    size: type === REGTYPE ? Number(st.size) : 0,
    mtime: timeFloat(st.mtimeNs),
    type,
    linkname,
    uname: w.owners.user(uid),
    gname: w.owners.group(gid),
    devmajor,
    devminor,
  };
}

/** Python sorts str by code point (JavaScript's default sort compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}
