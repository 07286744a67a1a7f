// Streaming tar writer for upload_directory: the same PAX archive Python 3.11's
// tarfile.open(mode='w'|'w|gz'|'w|bz2').add(path, '') produces, generated chunk by chunk (files of any size).
// This file walks the tree (TarFile.add, gettarinfo); headers, file data and compression have their own files.
// The walk is synchronous, as tarfile's is: measured on 2,000 small files, awaiting each lstat/open/fstat/read/
// close (a thread-pool round trip each) cost three times the CPU of the calls themselves. The event loop gets
// a turn after each batch of about TAR_BATCH_BYTES of archive.

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
import { fileData } from './tar-file-data.js';
import { BLKTYPE, BLOCKSIZE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, RECORDSIZE, REGTYPE, SYMTYPE, paxHeader, type MemberInfo } from './tar-header.js';

/** Python's tarfile.copybufsize default (16 KiB) is small; larger reads cost nothing here. */
const DEFAULT_READ_CHUNK = 128 * 1024;

/**
 * Archive bytes gathered before the stream yields (and the event loop runs): about 40 small members, or one
 * read chunk of a large file. Small enough that the walk never holds the event loop for long (well under a
 * millisecond per batch of files in the page cache); large enough that the per-yield cost vanishes.
 */
const TAR_BATCH_BYTES = 128 * 1024;

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
  /** Bytes read from a file at a time. */
  readChunkSize?: number;
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
  offset: number;
  inodes: Map<string, string>;
  owners: OwnerNames;
  host: TarHost;
  readChunk: number;
}

/** The plain tar stream (tarfile 'w' mode, PAX format), in chunks of about TAR_BATCH_BYTES. */
export async function* tarArchive(root: string, rootStat: BigIntStats, opts: TarOptions): TarStream {
  const w: Writer = {
    offset: 0,
    inodes: new Map(),
    owners: opts.host.ownerNames(),
    host: opts.host,
    readChunk: opts.readChunkSize ?? DEFAULT_READ_CHUNK,
  };
  let batch: Buffer[] = [];
  let batchBytes = 0;
  // a stop (return()) or an error leaves this loop, which closes the walk and its open file
  for (const chunk of addMember(w, root, '', rootStat)) {
    w.offset += chunk.length;
    batch.push(chunk);
    batchBytes += chunk.length;
    if (batchBytes >= TAR_BATCH_BYTES) {
      const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      yield out;
    }
  }
  // two zero blocks, then zero-fill to a whole record (like tar -b20)
  let end = BLOCKSIZE * 2;
  const rem = (w.offset + end) % RECORDSIZE;
  if (rem > 0) end += RECORDSIZE - rem;
  batch.push(Buffer.alloc(end));
  yield Buffer.concat(batch, batchBytes + end);
}

/** TarFile.add(name, arcname): the member, then (directories) its sorted entries, recursively. */
function* addMember(w: Writer, name: string, arcname: string, known?: BigIntStats): Generator<Buffer> {
  let st: BigIntStats;
  try {
    st = known ?? lstatSync(fsPath(name), { bigint: true });
  } catch (err) {
    throw toPyError(err, name);
  }
  const info = tarInfo(w, name, arcname, st);
  if (!info) return; // sockets and other unsupported types are skipped, as tarfile does

  yield paxHeader(info);
  if (info.type === REGTYPE) {
    yield* fileData(name, st, info.size, w.readChunk);
  } else if (info.type === DIRTYPE) {
    const names = listNames(name);
    names.sort(compareCodePoints);
    for (const f of names) yield* addMember(w, pathJoin(name, f), arcname ? pathJoin(arcname, f) : f);
  }
}

/** os.listdir(name): the entries' names (surrogate-escaped where not UTF-8); their order does not matter here. */
function listNames(name: string): string[] {
  try {
    checkNul(name);
    return (readdirSync(fsPath(name), { encoding: 'buffer' }) as Buffer[]).map((b) => fsdecode(b));
  } catch (err) {
    throw toPyError(err, name);
  }
}

/** TarFile.gettarinfo: the member's header fields from lstat (links are stored, not followed). */
function tarInfo(w: Writer, name: string, arcname: string, st: BigIntStats): MemberInfo | null {
  let type: string;
  let linkname = '';
  if (st.isFile()) {
    const inode = `${st.ino}:${st.dev}`;
    const first = w.inodes.get(inode);
    if (st.nlink > 1n && first !== undefined && arcname !== first) {
      // a hard link to a file already in the archive
      type = LNKTYPE;
      linkname = first;
    } else {
      type = REGTYPE;
      if (st.ino !== 0n) w.inodes.set(inode, arcname);
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
