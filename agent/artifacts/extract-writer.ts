// Writes the members of an archive (from the tar or the zip reader) into a fresh temp directory, after checking
// each against the model (extract-model.ts) and the limits. Files are created with O_EXCL, so an open never
// follows a symlink; parents are made one by one, each known to the model. Directory modes and mtimes are set at
// the end, deepest first (writing a file into a directory changes its mtime, and a read-only directory would
// refuse its contents).
//
// Modes: the permission bits (0o777) of the archive, less `modeMask` (default 0o022, like the umask of a service
// account, so no extracted file is group- or world-writable in a shared cache); setuid, setgid and sticky bits are
// always dropped. The owner keeps read on files and rwx on directories so the cache can verify and delete them.

import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, fchmodSync, futimesSync, openSync, writeSync } from 'node:fs';
import { link, lutimes, mkdir, open, symlink, unlink, chmod, utimes } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { ExtractModel, type NodeKind } from './extract-model.js';
import { pathKey, resolveLinkTarget, safeMemberName } from './safe-path.js';

/** Caps against archive bombs, checked while the data streams in. */
export interface ExtractLimits {
  /** Total bytes of file data written. */
  maxBytes: number;
  /** Members of any kind (files, directories, links, skipped devices). */
  maxEntries: number;
}

/** 32 GiB: more than any build or test package we know of, far less than a bomb would write. */
export const DEFAULT_MAX_BYTES = 32 * 1024 ** 3;
/** One million members: a large test suite has ~10^5 files. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Files up to this size are gathered in memory and written with synchronous calls (see smallFile). */
const SMALL_FILE = 64 * 1024;
/** fsyncs in flight at the end of a durable extraction. */
const SYNC_PARALLEL = 16;
/** Removed from every mode: group and world write. */
export const DEFAULT_MODE_MASK = 0o022;

export interface WriterOptions {
  logger: Logger;
  limits: ExtractLimits;
  modeMask: number;
  /** fsync every file before the tree is published (a power loss cannot leave a `.complete` tree with empty files). */
  durable: boolean;
  /** sha256 each regular file as it is written (`fileHashes`): a cache's manifest then need not read the tree again. */
  hashFiles?: boolean;
  signal?: AbortSignal;
  /** After each member, with the running totals. */
  onProgress?: (stats: Readonly<WriterStats>) => void;
}

export interface WriterStats {
  entries: number;
  bytes: number;
  /** devices, FIFOs and sockets are skipped with a warning */
  skipped: number;
}

/** A member's metadata as both readers deliver it. */
export interface MemberMeta {
  name: string;
  mode?: number;
  mtime?: Date;
}

export class TreeWriter {
  readonly stats: WriterStats = { entries: 0, bytes: 0, skipped: 0 };
  private readonly model = new ExtractModel();
  private readonly dirMeta = new Map<string, { mode: number; mtime?: Date }>();
  /** files written and not yet fsynced (durable mode syncs them together at the end) */
  private readonly unsynced: string[] = [];
  /** With `hashFiles`: each regular file's sha256 by its '/'-separated path (hardlinks are left out). */
  readonly fileHashes = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly archive: string,
    private readonly opts: WriterOptions,
  ) {
    this.model.add([], 'dir'); // the temp directory, made by the caller
  }

  /** The archive's path, for messages. */
  get archiveName(): string {
    return this.archive;
  }

  /** An AgentError naming the archive and the member. */
  refuse(member: string, reason: string, code: ErrorCode = 'E_EXTRACT_UNSAFE'): AgentError {
    return new AgentError(code, `${this.archive}: refusing member '${member}': ${reason}`);
  }

  private count(member: string): void {
    this.opts.signal?.throwIfAborted();
    if (this.stats.entries > 0) this.opts.onProgress?.(this.stats);
    if (++this.stats.entries > this.opts.limits.maxEntries) {
      throw this.refuse(member, `more than ${this.opts.limits.maxEntries} members`, 'E_EXTRACT_LIMIT');
    }
  }

  private addBytes(member: string, n: number): void {
    if (this.stats.bytes + n > this.opts.limits.maxBytes) {
      throw this.refuse(member, `more than ${this.opts.limits.maxBytes} bytes extracted in all`, 'E_EXTRACT_LIMIT');
    }
    this.stats.bytes += n;
  }

  /** Checks a new member of `kind` at `name`; makes missing parents; removes a file or link it replaces. */
  private async place(name: string, kind: NodeKind): Promise<string[]> {
    const safe = safeMemberName(name);
    if (!safe.ok) throw this.refuse(name, safe.reason);
    const parts = safe.parts;
    if (parts.length === 0 && kind !== 'dir') throw this.refuse(name, 'a non-directory names the extraction root');
    const missing: string[][] = [];
    const problem = this.model.parentProblem(parts, missing) ?? this.model.replaceProblem(parts, kind);
    if (problem) throw this.refuse(name, problem);
    for (const dir of missing) {
      await this.fsStep(name, () => mkdir(this.abs(dir), { mode: 0o700 }));
      this.model.add(dir, 'dir');
    }
    const now = this.model.kindOf(parts);
    if (now !== undefined && now !== 'dir') await this.fsStep(name, () => unlink(this.abs(parts)));
    return parts;
  }

  private abs(parts: readonly string[]): string {
    return parts.length === 0 ? this.root : path.join(this.root, ...parts);
  }

  /** fsStep for synchronous calls. */
  private fsStepSync<T>(member: string, step: () => T): T {
    try {
      return step();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new AgentError('E_EXTRACT_IO', `${this.archive}: cannot write member '${member}': ${e.code ?? ''} ${e.message}`.trim());
    }
  }

  /** Runs a file-system step; its error names the archive and the member. */
  private async fsStep<T>(member: string, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new AgentError('E_EXTRACT_IO', `${this.archive}: cannot write member '${member}': ${e.code ?? ''} ${e.message}`.trim());
    }
  }

  private fileMode(mode: number | undefined, fallback: number): number {
    return ((mode ?? fallback) & 0o777 & ~this.opts.modeMask) | 0o400;
  }

  async dir(m: MemberMeta): Promise<void> {
    this.count(m.name);
    const parts = await this.place(m.name, 'dir');
    if (this.model.kindOf(parts) === undefined) {
      await this.fsStep(m.name, () => mkdir(this.abs(parts), { mode: 0o700 }));
      this.model.add(parts, 'dir');
    }
    const mode = (this.fileMode(m.mode, 0o755) | 0o700) & 0o777;
    this.dirMeta.set(pathKey(parts), m.mtime ? { mode, mtime: m.mtime } : { mode });
  }

  /** A regular file; `size` (when the format declares it) is checked against the byte cap before any data. */
  async file(m: MemberMeta, size: number | undefined, data: AsyncIterable<Buffer>): Promise<void> {
    this.count(m.name);
    if (size !== undefined && this.stats.bytes + size > this.opts.limits.maxBytes) this.addBytes(m.name, size);
    const parts = await this.place(m.name, 'file');
    const file = this.abs(parts);
    const mode = this.fileMode(m.mode, 0o644);
    if (size !== undefined && size <= SMALL_FILE) await this.smallFile(m, parts, data, mode);
    else await this.largeFile(m, parts, data, mode);
    if (this.opts.durable) this.unsynced.push(file);
  }

  /**
   * A small file is gathered in memory and written with synchronous calls: five thread-pool round trips per file
   * (open, write, chmod, utimes, close) cost more than the few microseconds these block the event loop.
   */
  private async smallFile(m: MemberMeta, parts: string[], data: AsyncIterable<Buffer>, mode: number): Promise<void> {
    const chunks: Buffer[] = [];
    const hash = this.opts.hashFiles ? createHash('sha256') : undefined;
    let got = 0;
    for await (const chunk of data) {
      this.addBytes(m.name, chunk.length);
      got += chunk.length;
      if (got > SMALL_FILE) throw new AgentError('E_EXTRACT_CORRUPT', `${this.archive}: member '${m.name}' has more data than its size`);
      chunks.push(chunk);
    }
    this.opts.signal?.throwIfAborted();
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    this.fileHashes.delete(pathKey(parts));
    this.fsStepSync(m.name, () => {
      const fd = openSync(this.abs(parts), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      this.model.add(parts, 'file');
      try {
        for (let at = 0; at < body.length;) at += writeSync(fd, body, at, body.length - at);
        fchmodSync(fd, mode);
        if (m.mtime) futimesSync(fd, m.mtime, m.mtime);
      } finally {
        closeSync(fd);
      }
    });
    if (hash) this.fileHashes.set(pathKey(parts), hash.update(body).digest('hex'));
  }

  private async largeFile(m: MemberMeta, parts: string[], data: AsyncIterable<Buffer>, mode: number): Promise<void> {
    this.fileHashes.delete(pathKey(parts));
    const fh = await this.fsStep(m.name, () => open(this.abs(parts), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600));
    this.model.add(parts, 'file');
    const hash = this.opts.hashFiles ? createHash('sha256') : undefined;
    try {
      for await (const chunk of data) {
        this.addBytes(m.name, chunk.length);
        this.opts.signal?.throwIfAborted();
        const write = this.fsStep(m.name, () => fh.write(chunk));
        hash?.update(chunk); // while the thread pool writes
        await write;
      }
      await this.fsStep(m.name, async () => {
        await fh.chmod(mode);
        if (m.mtime) await fh.utimes(m.mtime, m.mtime);
      });
      if (hash) this.fileHashes.set(pathKey(parts), hash.digest('hex'));
    } finally {
      await fh.close();
    }
  }

  async symlink(m: MemberMeta, target: string): Promise<void> {
    this.count(m.name);
    const safe = safeMemberName(m.name);
    if (!safe.ok) throw this.refuse(m.name, safe.reason);
    const lexical = resolveLinkTarget(safe.parts, target);
    if (!lexical.ok) throw this.refuse(m.name, lexical.reason);
    const parts = await this.place(m.name, 'symlink');
    await this.fsStep(m.name, () => symlink(target, this.abs(parts)));
    this.model.add(parts, 'symlink', target);
    // a link's own mtime is cosmetic; a file system without lutimes support must not fail the extraction
    if (m.mtime) await lutimes(this.abs(parts), m.mtime, m.mtime).catch(() => undefined);
  }

  /** A hardlink to `target`, a member name that must be an earlier regular file. */
  async hardlink(m: MemberMeta, target: string): Promise<void> {
    this.count(m.name);
    const t = safeMemberName(target);
    if (!t.ok) throw this.refuse(m.name, `hardlink target '${target}': ${t.reason}`);
    if (this.model.kindOf(t.parts) !== 'file') throw this.refuse(m.name, `hardlink target '${target}' is not an earlier regular file of the archive`);
    const me = safeMemberName(m.name);
    if (me.ok && pathKey(me.parts) === pathKey(t.parts)) return; // a link to itself: nothing to do
    const parts = await this.place(m.name, 'file');
    this.fileHashes.delete(pathKey(parts)); // a manifest hashes a hardlink itself
    await this.fsStep(m.name, () => link(this.abs(t.parts), this.abs(parts)));
    this.model.add(parts, 'file');
  }

  /** A device, FIFO or socket: never created (an artifact has no use for one); counted and logged. */
  skip(name: string, kind: string): void {
    this.count(name);
    this.stats.skipped++;
    this.opts.logger.warn(`${this.archive}: skipping member '${name}': ${kind} is not extracted`);
  }

  /**
   * fsyncs every file written, SYNC_PARALLEL at a time: a file system commits concurrent syncs together, where
   * one sync per file as it is closed would cost a journal commit each.
   */
  private async syncFiles(): Promise<void> {
    const files = this.unsynced.splice(0);
    const worker = async (): Promise<void> => {
      for (let f = files.pop(); f !== undefined; f = files.pop()) {
        const file = f;
        await this.fsStep(path.relative(this.root, file), async () => {
          const fh = await open(file, 'r');
          try {
            await fh.datasync();
          } finally {
            await fh.close();
          }
        });
      }
    };
    await Promise.all(Array.from({ length: SYNC_PARALLEL }, worker));
  }

  /** The end: refuses symlink chains that escape, then sets directory modes and mtimes deepest first. */
  async finish(): Promise<void> {
    this.opts.onProgress?.(this.stats);
    const bad = this.model.escapingLinks()[0];
    if (bad) throw this.refuse(bad[0], bad[1]);
    await this.syncFiles();
    for (const dir of this.model.dirsDeepestFirst()) {
      const meta = this.dirMeta.get(pathKey(dir));
      const where = this.abs(dir);
      await this.fsStep(pathKey(dir) || '.', async () => {
        await chmod(where, meta?.mode ?? 0o755 & ~this.opts.modeMask);
        if (meta?.mtime) await utimes(where, meta.mtime, meta.mtime);
      });
    }
  }
}
