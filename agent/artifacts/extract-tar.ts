// Reads a plain tar stream with node-tar's Parser (ustar, GNU long names, PAX headers) and hands each member to
// the TreeWriter, one at a time. node-tar's own Unpack is not used: it strips `/` and `..` with a warning where we
// refuse the whole archive, and the tar and zip readers must share one set of rules (extract-writer.ts).
//
// The parser runs in strict mode: a bad header checksum or a truncated archive is an error, not a warning.

import { once } from 'node:events';
import { Parser, type ReadEntry } from 'tar';
import { AgentError, errorMessage } from '../errors.js';
import type { TreeWriter } from './extract-writer.js';

/** Member types that carry a regular file's data. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
/** Not created, counted as skipped (see TreeWriter.skip). */
const SKIPPED_TYPES = new Map([
  ['CharacterDevice', 'a character device'],
  ['BlockDevice', 'a block device'],
  ['FIFO', 'a FIFO'],
]);

function memberMeta(entry: ReadEntry): { name: string; mode?: number; mtime?: Date } {
  return {
    name: entry.path,
    ...(entry.mode !== undefined ? { mode: entry.mode } : {}),
    ...(entry.mtime ? { mtime: entry.mtime } : {}),
  };
}

/**
 * The data of `entry`, ending early with the extraction's failure: after a decoder error the parser never ends
 * the entry, and a destroyed minipass stream never settles a later read.
 */
async function* entryData(entry: ReadEntry, failed: Promise<never>): AsyncGenerator<Buffer> {
  const it = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (;;) {
    const r = await Promise.race([it.next(), failed]);
    if (r.done) return;
    yield r.value;
  }
}

/** Hands one member to the writer; its data (if any) is read from `entry`. */
async function writeMember(entry: ReadEntry, w: TreeWriter, failed: Promise<never>): Promise<void> {
  const meta = memberMeta(entry);
  if (FILE_TYPES.has(entry.type)) return w.file(meta, entry.size, entryData(entry, failed));
  entry.resume();
  switch (entry.type) {
    case 'Directory':
    case 'GNUDumpDir':
      return w.dir(meta);
    case 'SymbolicLink':
      return w.symlink(meta, entry.linkpath ?? '');
    case 'Link':
      return w.hardlink(meta, entry.linkpath ?? '');
  }
  const skipped = SKIPPED_TYPES.get(entry.type);
  if (skipped) return w.skip(entry.path, skipped);
  throw w.refuse(entry.path, `unsupported tar member type '${entry.type}'`, 'E_EXTRACT_UNSUPPORTED');
}

/** Extracts the tar stream `plain` through `w`; resolves when every member is written. */
export async function extractTarStream(plain: AsyncIterable<Buffer>, w: TreeWriter, archive: string): Promise<void> {
  const parser = new Parser({ strict: true, zstd: false, brotli: false });
  let failure: unknown = null;
  let rejectFailed: (err: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => {}); // observed through Promise.race below
  const fail = (err: unknown): void => {
    if (failure !== null) return;
    failure = err;
    rejectFailed(err);
  };
  let work: Promise<void> = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    work = work.then(async () => {
      if (failure !== null) return void entry.resume();
      try {
        await writeMember(entry, w, failed);
      } catch (err) {
        entry.resume();
        fail(err);
      }
    });
  });
  // entries node-tar cannot use (sparse files, multi-volume parts, oversized PAX headers) would extract wrongly
  parser.on('ignoredEntry', (entry: ReadEntry) => fail(w.refuse(entry.path, `unsupported tar member type '${entry.type}'`, 'E_EXTRACT_UNSUPPORTED')));
  parser.on('error', (err: Error) => fail(new AgentError('E_EXTRACT_CORRUPT', `${archive}: corrupt or truncated tar data: ${err.message}`)));
  // GNU tar, bsdtar, Python and node-tar all end an archive with two zero blocks: without them it was cut short
  // (at a member boundary, where the parser itself sees nothing wrong)
  let sawEnd = false;
  parser.on('eof', () => (sawEnd = true));
  const ended = once(parser, 'end');
  ended.catch(() => {});
  try {
    for await (const chunk of plain) {
      if (failure !== null) break;
      if (!parser.write(chunk)) await Promise.race([once(parser, 'drain'), failed]);
    }
    if (failure === null) {
      parser.end();
      await Promise.race([ended, failed]);
      if (!sawEnd) fail(new AgentError('E_EXTRACT_CORRUPT', `${archive}: truncated tar data: no end-of-archive blocks`));
    }
  } catch (err) {
    fail(err instanceof AgentError ? err : new AgentError('E_EXTRACT_CORRUPT', `${archive}: corrupt or truncated data: ${errorMessage(err)}`));
  }
  await work;
  if (failure !== null) throw failure;
}
